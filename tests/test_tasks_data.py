# data_path (local copy, cache, atomic download, the error when nothing works), the registry,
# and the prompts of stories / instructions.
import io
import os
import urllib.request

import pytest

import tasks
from tasks import data, instructions, stories

@pytest.fixture
def dirs(tmp_path, monkeypatch):
    local, cache = tmp_path / "local", tmp_path / "cache"
    monkeypatch.setenv("LPO_DATA_DIR", str(local))
    monkeypatch.setenv("LPO_CACHE", str(cache))
    def no_network(*a, **k):
        raise OSError("no network in this test")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return local, cache

def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

def test_local_copy_first(dirs):
    local, cache = dirs
    write(local / "gsm8k/test.jsonl", "local")
    write(cache / "gsm8k/test.jsonl", "cache")
    assert open(data.data_path("gsm8k/test.jsonl")).read() == "local"
    other = local.parent / "other"
    write(other / "gsm8k/test.jsonl", "explicit")
    assert open(data.data_path("gsm8k/test.jsonl", data_dir=str(other))).read() == "explicit"

def test_cache_hit(dirs):
    _, cache = dirs
    write(cache / "wikitext-2/test.txt", "cached")
    assert data.data_path("wikitext-2/test.txt") == str(cache / "wikitext-2/test.txt")

class FakeResponse(io.BytesIO):
    """What urlopen returns; on every read it checks that the target is written through a .part file."""
    def __init__(self, payload, target, fail_after=None):
        super().__init__(payload)
        self.target, self.fail_after, self.reads = target, fail_after, 0
    def read(self, size=-1):
        assert not os.path.exists(self.target), "the final path must appear only when complete"
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise ConnectionResetError("connection dropped")
        return super().read(min(size, 4))  # small chunks: several reads

def test_download_atomic(dirs, monkeypatch):
    _, cache = dirs
    target = cache / "gsm8k/train.jsonl"
    payload = b'{"question": "q", "answer": "#### 1"}\n'
    urls = []
    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return FakeResponse(payload, str(target))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    path = data.data_path("gsm8k/train.jsonl")
    assert path == str(target) and target.read_bytes() == payload
    assert urls == [data.URLS["gsm8k/train.jsonl"]]
    assert urls[0].startswith("https://raw.githubusercontent.com/openai/grade-school-math/")
    assert [p.name for p in target.parent.iterdir()] == ["train.jsonl"]  # no .part left behind
    assert data.data_path("gsm8k/train.jsonl") == path and len(urls) == 1  # now a cache hit

def test_interrupted_download_leaves_nothing(dirs, monkeypatch):
    _, cache = dirs
    target = cache / "wikitext-2/valid.txt"
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: FakeResponse(b"x" * 100, str(target), fail_after=2))
    with pytest.raises(FileNotFoundError, match="connection dropped"):
        data.data_path("wikitext-2/valid.txt")
    assert not target.exists() and list(target.parent.iterdir()) == []

def test_clear_error_when_nothing_works(dirs):
    local, cache = dirs
    with pytest.raises(FileNotFoundError) as e:
        data.data_path("gsm8k/test.jsonl")
    msg = str(e.value)
    assert data.URLS["gsm8k/test.jsonl"] in msg                      # what, from where
    assert str(cache / "gsm8k/test.jsonl") in msg                     # where to put it
    assert "LPO_DATA_DIR" in msg and "no network in this test" in msg and str(local) in msg
    # AlpacaEval: the message names its URL too
    with pytest.raises(FileNotFoundError) as e:
        data.data_path("alpaca_eval/instructions.jsonl")
    assert "tatsu-lab/alpaca_eval" in str(e.value) and "instruction" in str(e.value)
    # doing what it says works: the JSON saved by hand where it says is made into the jsonl
    saved = str(e.value).split("save it as ")[1].split(" ")[0]
    assert saved == str(cache / "alpaca_eval/alpaca_eval.json")  # the file's own name
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    with open(saved, "w") as f:
        f.write('[{"instruction": "Say hi.", "dataset": "helpful_base"}]')
    path = data.data_path("alpaca_eval/instructions.jsonl")
    assert open(path).read() == '{"dataset": "helpful_base", "instruction": "Say hi."}\n'

def test_alpaca_eval_json_becomes_jsonl(dirs, monkeypatch):
    local, cache = dirs
    payload = (b'[{"instruction": "Say hi.", "output": "hi", "dataset": "helpful_base"}, '
               b'{"instruction": "Add 2+2", "dataset": "oasst"}]')
    urls = []
    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return io.BytesIO(payload)
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    path = data.data_path("alpaca_eval/instructions.jsonl")
    assert urls == [data.URLS["alpaca_eval/instructions.jsonl"]]
    assert path == str(cache / "alpaca_eval/instructions.jsonl")
    lines = open(path).read().splitlines()
    assert lines == ['{"dataset": "helpful_base", "instruction": "Say hi."}',
                     '{"dataset": "oasst", "instruction": "Add 2+2"}']


def test_helpers():
    assert data.subsample([1, 2, 3]) == [1, 2, 3]
    assert data.subsample(range(10), 3, seed=4) == data.subsample(range(10), 3, seed=4)
    assert sorted(data.subsample(range(10), 30)) == list(range(10))
    frac = sum(data.is_test(f"item {i}") for i in range(5000)) / 5000
    assert 0.18 < frac < 0.22

def test_registry():
    assert set(tasks.TASKS) == {"arithmetic", "easy_arithmetic", "arithmetic_vote", "gsm8k", "gsm8k_vote",
                                "stories", "instructions", "repetition", "constrained_stories", "synthetic"}
    t = tasks.get_task("gsm8k")  # the module's own names, DEFAULTS for the rest; the module unchanged
    assert t.prompts is tasks.gsm8k.prompts and t.EVAL_SAMPLES == 1
    assert not hasattr(tasks.gsm8k, "EVAL_SAMPLES")
    valid = "valid tasks: arithmetic, arithmetic_vote, constrained_stories, easy_arithmetic, gsm8k"
    with pytest.raises(ValueError, match=valid):
        tasks.get_task("gsm8", )
    for name in tasks.TASKS:  # the uniform interface, optional hooks filled in by get_task
        t = tasks.get_task(name)
        assert (t.NAME == name and isinstance(t.CHAT, bool) and callable(t.prompts)
                and callable(t.group_reward))
        assert callable(t.group_metrics) and callable(t.temperature_metrics) and t.EVAL_SAMPLES >= 1
        assert isinstance(t.LABEL, str) and all(isinstance(m, str) for m in t.LOWER_IS_BETTER)
        assert isinstance(t.REWARD, str) and isinstance(t.RELATIVE, bool)
    for name, field in [("arithmetic", "question"), ("easy_arithmetic", "question"), ("stories", "title"),
                        ("constrained_stories", "title"),
                        ("arithmetic_vote", "question"), ("synthetic", "prompt")]:  # sample.py --task
        ex = tasks.prompts(name, "test", n=2)[0]
        assert tasks.get_task(name).format_prompt(ex[field]) == ex["prompt"]
    assert tasks.mix("synthetic") == {"synthetic": 1}                      # a task alone
    assert tasks.mix("ultramathstories_arithmetic") == {"instructions": 1, "easy_arithmetic": 1,
                                                         "stories": 1}
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        tasks.mix("nope")
    ex = tasks.prompts("arithmetic", "test", n=2)
    assert len(ex) == 2 and tasks.rewards(ex[:1], [f"The answer is {ex[0]['gold']}"]) == [1.0]

def test_get_task_sees_patches(monkeypatch):
    # get_task reads the module at each call: a patched name shows, the default group_reward
    # calls the module's (patched) reward, and the module gets no defaults of its own
    monkeypatch.setattr(tasks.arithmetic, "EVAL_SAMPLES", 3, raising=False)
    monkeypatch.setattr(tasks.arithmetic, "reward", lambda example, response: len(response))
    t = tasks.get_task("arithmetic")
    assert t.EVAL_SAMPLES == 3 and t.group_reward({}, ["a", "bcd"], None) == [1, 3]
    assert not hasattr(tasks.arithmetic, "group_reward") and not hasattr(tasks.arithmetic, "JUDGED")


def test_stories():
    assert len(stories.TITLES) >= 200 and len(set(stories.TITLES)) == len(stories.TITLES)
    train, test = stories.prompts("train"), stories.prompts("test")
    assert len(train) + len(test) == len(stories.TITLES) and len(test) > 20
    assert not {e["title"] for e in train} & {e["title"] for e in test}
    assert test == stories.prompts("test")  # deterministic
    assert test[0]["prompt"] == "Write a short story with the title: " + test[0]["title"]

def test_instructions_ultrafeedback_local(tmp_path, monkeypatch):
    f = tmp_path / "uf.jsonl"
    f.write_text("".join(f'{{"prompt": "Explain topic number {i}."}}\n' for i in range(100))
                 + '{"instruction": "Explain topic number 0."}\n\n')  # a duplicate and a blank line
    monkeypatch.setenv("LPO_ULTRAFEEDBACK", str(f))
    train, test = instructions.prompts("train"), instructions.prompts("test")
    assert len(train) + len(test) == 100 and test
    assert not {e["prompt"] for e in train} & {e["prompt"] for e in test}
    assert train[0]["source"] == "ultrafeedback"

ALPACA_EVAL = os.path.join(os.environ.get("LPO_DATA_DIR", ""), "alpaca_eval", "instructions.jsonl")

@pytest.mark.skipif(not os.path.isfile(ALPACA_EVAL),
                    reason="set LPO_DATA_DIR to a copy of the data (alpaca_eval/instructions.jsonl)")
def test_instructions_alpaca_eval(monkeypatch):
    monkeypatch.delenv("LPO_ULTRAFEEDBACK", raising=False)
    train, test = instructions.prompts("train"), instructions.prompts("test")
    assert len(train) + len(test) == 805 and 120 < len(test) < 200
    assert train[0]["source"] == "alpaca_eval" and train[0]["dataset"] == "helpful_base"
    assert not {e["prompt"] for e in train} & {e["prompt"] for e in test}

# -----------------------------------------------------------------------------
# reading the files: one clear error naming the file, the line and what was expected

def test_read_lines_is_readlines(tmp_path):
    f = tmp_path / "t.txt"
    # a BOM, CRLF, a lone CR, a line separator, no final newline: as in text mode
    f.write_bytes("\ufeffa\r\nb\rc\n\n  é 猫 \u2028 x\nlast".encode())
    assert data.read_lines(f) == open(f, encoding="utf-8").readlines()
    f.write_bytes(b"a\r\nb\rc\n" * 1000 + b"ok \xff\n")  # lines counted as text mode counts them
    with pytest.raises(ValueError) as e:
        data.read_lines(f)
    assert str(e.value) == (f"{f}, line 3001: not valid UTF-8 (byte 0xff: invalid start byte); "
                            "expected UTF-8 text")

def test_read_jsonl(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"question": "Q1", "answer": "A1"}\n\n  \n{"question": "Q2", "answer": "A2", "x": 1}\n')
    assert list(data.read_jsonl(f, ("question", "answer"))) == [
        (1, {"question": "Q1", "answer": "A1"}), (4, {"question": "Q2", "answer": "A2", "x": 1})]
    f.write_text('{"prompt": "P"}\n{"instruction": null, "prompt": "Q"}\n{"instruction": 3}\n')
    with pytest.raises(ValueError) as e:
        list(data.read_jsonl(f, (("instruction", "prompt"),)))
    assert str(e.value) == (f'{f}, line 3: no text field "instruction" or "prompt"; '
                            'expected one JSON object per line with field "instruction" or "prompt"')

UF_EXPECTED = 'expected one JSON object per line with field "instruction" or "prompt"'

@pytest.mark.parametrize("bad, error", [
    (b'{"prompt": "Explain topic 9." "dataset": "x"}', "line 3: not valid JSON (Expecting ',' delimiter)"),
    (b'{"prompt": "Explain caf\xe9."}', "line 3: not valid UTF-8 (byte 0xe9: invalid continuation byte)"),
    (b'{"dataset": "x", "output": "no instruction"}', 'line 3: no text field "instruction" or "prompt"'),
    (b'"Explain topic 9."', "line 3: not a JSON object"),
], ids=["json", "utf8", "no_field", "not_object"])
def test_instructions_malformed_file_names_the_line(tmp_path, monkeypatch, bad, error):
    f = tmp_path / "uf.jsonl"
    f.write_bytes(b'{"prompt": "Explain topic 1."}\n\n' + bad + b'\n{"prompt": "Explain topic 2."}\n')
    monkeypatch.setenv("LPO_ULTRAFEEDBACK", str(f))
    with pytest.raises(ValueError) as e:
        tasks.prompts("instructions", "train")  # what train.py calls, printing "error: {e}"
    assert str(e.value) == f"{f}, {error}; {UF_EXPECTED}"

def test_instructions_ids_are_line_indices(tmp_path, monkeypatch):
    f = tmp_path / "uf.jsonl"
    # a blank line after each object: the ids are the line indices, from 0
    f.write_text("\n".join(f'{{"prompt": "Explain topic number {i}."}}\n' for i in range(40)))
    monkeypatch.setenv("LPO_ULTRAFEEDBACK", str(f))
    exs = instructions.prompts("train") + instructions.prompts("test")
    assert sorted(int(e["id"].split("/")[1]) for e in exs) == list(range(0, 80, 2))
    assert all(e["prompt"] == f"Explain topic number {int(e['id'].split('/')[1]) // 2}." for e in exs)

@pytest.mark.parametrize("line", ["[" * 100_000 + "]" * 100_000, '{"a": ' * 50_000 + "1" + "}" * 50_000],
                         ids=["arrays", "objects"])
def test_read_jsonl_deeply_nested_line(tmp_path, line):
    f = tmp_path / "t.jsonl"
    f.write_text('{"prompt": "P"}\n' + line + "\n")
    with pytest.raises(ValueError) as e:  # was a RecursionError from the json module
        list(data.read_jsonl(f, (("instruction", "prompt"),)))
    assert str(e.value) == (f"{f}, line 2: not valid JSON (nested too deeply); "
                            'expected one JSON object per line with field "instruction" or "prompt"')
