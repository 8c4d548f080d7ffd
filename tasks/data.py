"""
Finding dataset files, plus two small helpers every task uses.

data_path("gsm8k/test.jsonl") looks, in order, in
  1) an explicit data_dir argument, else $LPO_DATA_DIR (train.py's --data_dir sets it),
  2) the cache: $LPO_CACHE, else ~/.cache/lpo/data,
  3) the canonical URL (URLS below), downloaded into the cache atomically (.part + os.replace),
and otherwise raises ONE FileNotFoundError saying what to download, from where, and where to put it.
The project never ships data.
read_lines and read_jsonl read the files, with one clear error (path, line, what was expected) on bad data.
"""
import io
import json
import os
import random
import urllib.request
import zlib

_GSM8K = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/"
_WIKITEXT = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/"
URLS = {
    "gsm8k/train.jsonl": _GSM8K + "train.jsonl",
    "gsm8k/test.jsonl": _GSM8K + "test.jsonl",
    "wikitext-2/valid.txt": _WIKITEXT + "valid.txt",
    "wikitext-2/test.txt": _WIKITEXT + "test.txt",
    # a JSON list of records with 'instruction' and 'dataset' (and model outputs): made into jsonl
    "alpaca_eval/instructions.jsonl":
        "https://huggingface.co/datasets/tatsu-lab/alpaca_eval/resolve/main/alpaca_eval.json",
}
# files with no single raw URL: say how to make them instead
HOWTO = {
    "alpaca_eval/instructions.jsonl":
        "the 805 AlpacaEval instructions, one JSON object per line with fields "
        "'dataset' and 'instruction' (from tatsu-lab/alpaca_eval: github.com/tatsu-lab/alpaca_eval or the "
        "Hugging Face dataset tatsu-lab/alpaca_eval, file alpaca_eval.json)",
    "ultrafeedback/instructions.jsonl":
        "UltraFeedback prompts, one JSON object per line with an 'instruction' "
        "or 'prompt' field (from the Hugging Face dataset openbmb/UltraFeedback)",
}

def cache_dir():
    return os.environ.get("LPO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lpo", "data")

def find_local(relpath, data_dir=None):
    """Path of an existing local copy of relpath (data dir, then cache), or None. Never downloads."""
    for root in (data_dir or os.environ.get("LPO_DATA_DIR"), cache_dir()):
        if root and os.path.isfile(os.path.join(root, relpath)):
            return os.path.join(root, relpath)
    return None

def download(url, path):
    """Stream url into path via a .part file, so a crash never leaves a half-written path behind."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.part"
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        os.replace(tmp, path)  # atomic on the same filesystem
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

def data_path(relpath, data_dir=None):
    """Local path of dataset file relpath (e.g. 'gsm8k/test.jsonl'); downloads it if needed and possible."""
    path = find_local(relpath, data_dir)
    if path:
        return path
    target = os.path.join(cache_dir(), relpath)
    url, why = URLS.get(relpath), None
    as_json = url and url.endswith(".json") and os.path.join(os.path.dirname(target), os.path.basename(url))
    if url:
        try:
            if as_json:  # keep the instructions of a JSON list, one per line
                if not os.path.isfile(as_json):  # a copy saved by hand is used as it is
                    download(url, as_json)
                with open(as_json) as f:
                    rows = [{"dataset": r.get("dataset", ""), "instruction": r["instruction"]}
                            for r in json.load(f)]
                with open(target + ".tmp", "w") as f:
                    f.writelines(json.dumps(r) + "\n" for r in rows)
                os.replace(target + ".tmp", target)
            else:
                download(url, target)
            return target
        except Exception as e:  # no network, 404, disk full...
            why = f"downloading {url} failed: {type(e).__name__}: {e}"
    where = [p for p in (data_dir or os.environ.get("LPO_DATA_DIR"), cache_dir()) if p]
    what = f"download {url}" if url else f"get {HOWTO.get(relpath, relpath)}"
    save_as = f"{as_json} (the next run makes it into {os.path.basename(target)})" if as_json else target
    raise FileNotFoundError(
        f"dataset file '{relpath}' not found (looked in: {', '.join(where)}"
        + (f"; {why}" if why else "") + ").\n"
        f"Fix: {what}\n  and save it as {save_as}\n"
        "  or set LPO_DATA_DIR=/path/to/data (a local copy of the datasets) "
        f"so that $LPO_DATA_DIR/{relpath} exists.")

# -----------------------------------------------------------------------------
# reading the files: a malformed line raises one ValueError naming the file, the line and what was expected

def read_lines(path, expected="UTF-8 text"):
    """The lines of a UTF-8 text file, as open(path, encoding="utf-8").readlines() gives them (the same
    line ends); bad UTF-8 raises a ValueError naming its line."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:  # decoding all of it at once: e.start is the offset in the file
        line = data[:e.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not valid UTF-8 (byte 0x{data[e.start]:02x}: {e.reason}); "
                         f"expected {expected}") from None
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").readlines()

def read_jsonl(path, fields):
    """(line number from 1, dict) for each non-blank line of a JSON-lines file. fields: the names every
    object needs as strings, a tuple of names standing for 'one of these', e.g. ("question", "answer")
    or (("instruction", "prompt"),)."""
    need = lambda f: " or ".join(f'"{n}"' for n in f) if isinstance(f, tuple) else f'"{f}"'
    expected = (f"one JSON object per line with field{'s' * (len(fields) > 1)} "
                + " and ".join(map(need, fields)))
    for i, line in enumerate(read_lines(path, expected), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {i}: not valid JSON ({e.msg}); expected {expected}") from None
        except RecursionError:  # e.g. "[[[[...": more levels than Python's stack holds
            raise ValueError(f"{path}, line {i}: not valid JSON (nested too deeply); "
                             f"expected {expected}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {i}: not a JSON object; expected {expected}")
        for f in fields:
            if not any(isinstance(row.get(n), str) for n in (f if isinstance(f, tuple) else (f,))):
                raise ValueError(f"{path}, line {i}: no text field {need(f)}; expected {expected}")
        yield i, row

# -----------------------------------------------------------------------------
# helpers shared by the tasks

def is_test(text, test_frac=0.2):
    """Deterministic train/test assignment from a hash of the text (stable across runs and list edits)."""
    return zlib.crc32(text.encode("utf-8")) % 1000 < test_frac * 1000

def subsample(examples, n=None, seed=0):
    """All examples in canonical order when n is None, else a seeded random sample of min(n, len) of them."""
    if n is None:
        return list(examples)
    return random.Random(seed).sample(list(examples), min(n, len(examples)))
