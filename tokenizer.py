"""Byte-level BPE tokenizers (GPT-2, SmolLM2, Llama 3) on top of tiktoken.

tiktoken encodes text in two steps: a regex splits it into pieces, then each piece (as UTF-8 bytes)
is merged pairwise, always merging the adjacent pair whose concatenation has the lowest *rank*;
the ranks of the final parts are the token ids. GPT-2's and Llama 3's original files are already in
that form (base64 token + rank per line). Hugging Face and GGUF files instead store
  - a vocab of token strings -> ids, written in GPT-2's "bytes_to_unicode" alphabet (' ' is 'Ġ'), and
  - an ordered list of merges "a b": the earlier a merge, the higher its priority.
We translate: bytes get ranks 0..255, merge i's result gets rank 256 + i (so tiktoken merges in the same
order), and two numpy tables map tiktoken ranks <-> real ids.

Two differences between the algorithms turn out not to matter for SmolLM2 (checked against transformers
and llama.cpp on ~13M characters with no mismatch): tiktoken merges any adjacent pair whose
concatenation has a rank (HF only the listed pairs), and returns a piece that is itself a token
directly (every SmolLM2 token is what BPE makes of its own bytes). SmolLM2's vocab has no token for 21
bytes (6 control characters and bytes that never or rarely occur in UTF-8): like HF and llama.cpp, we
drop them. Its ids happen to follow merge order (merge i makes token 252 + i).
"""
import base64
import os
from pathlib import Path

import numpy as np
import tiktoken

from weights import WeightFileError, read_gguf, read_json, resolve_source

# GPT-2's split regex: contractions, words, numbers, punctuation runs, whitespace.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# SmolLM2 runs Digits(individual_digits=True) before GPT-2's regex: every digit is its own piece and
# ends the piece before it as the end of the text would. So ' ?\p{N}+' becomes '\p{N}', and the
# whitespace rule '\s+(?!\S)' ("not followed by a non-space") also accepts a following digit.
SMOLLM_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""
# Llama 3 (Meta's tokenizer.py): case-insensitive contractions, numbers in groups of up to 3.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = (["<|begin_of_text|>", "<|end_of_text|>"]
                   + [f"<|reserved_special_token_{i}|>" for i in range(4)]
                   + ["<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>",
                      "<|eot_id|>"]
                   + [f"<|reserved_special_token_{i}|>" for i in range(5, 251)])  # 256 in all
GGUF_PATTERNS = {"smollm": SMOLLM_PATTERN, "gpt-2": GPT2_PATTERN, "default": GPT2_PATTERN,
                 "llama-bpe": LLAMA3_PATTERN, "llama3": LLAMA3_PATTERN}
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
GPT2_FILES = [os.environ.get("GPT2_TIKTOKEN", ""),  # explicit path, else the project's offline copy
              Path(__file__).resolve().parent.parent / "shared/data/tokenizers/gpt2.tiktoken",
              Path(__file__).resolve().parent / "shared/data/tokenizers/gpt2.tiktoken"]


def bytes_to_unicode():
    """GPT-2's map from the 256 bytes to printable characters (printable bytes map to themselves)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), 256)))
    cs = bs + [256 + n for n in range(256 - len(bs))]
    bs = bs + [b for b in range(256) if b not in bs]
    return dict(zip(bs, map(chr, cs)))


BYTE_OF_CHAR = {c: b for b, c in bytes_to_unicode().items()}


def to_bytes(token: str) -> bytes:
    return bytes(BYTE_OF_CHAR[c] for c in token)


def field_error(where, field, want, value, hint="the file is damaged; download it again"):
    """The one error for a tokenizer file whose field is missing or of the wrong kind."""
    got = "it is missing" if value is None else f"got {repr(value)[:80]}"
    return WeightFileError(f"{where}: field {field!r} must be {want}, {got}; {hint}")


def load_tiktoken_file(path) -> dict[bytes, int]:
    """A tiktoken BPE file: one 'base64(token) rank' per line."""
    try:
        with open(path, "rb") as f:
            return {base64.b64decode(tok): int(rank)
                    for tok, rank in (line.split() for line in f if line.strip())}
    except (ValueError, UnicodeDecodeError) as e:
        raise WeightFileError(f"{path} is not a tiktoken BPE file (base64 token + rank per line): {e}") from e


class Tokenizer:
    def __init__(self, name, pattern, ranks, specials, to_id=None, bos=None, eos=None, n_vocab=None):
        """ranks: bytes -> tiktoken rank; specials: str -> real id; to_id: None if ranks are the real ids,
        else an array tiktoken id -> real id (-1: a byte the vocab has no token for, dropped as HF does)."""
        self.name, self.special_tokens = name, dict(specials)
        if to_id is None:  # the ranks are the ids (GPT-2's and Llama 3's tiktoken files)
            tik_specials = self.special_tokens
        else:  # tiktoken wants the specials' ids apart from the ranks: number them after the ranks
            tik_specials = {s: len(to_id) + k for k, s in enumerate(specials)}
            to_id = np.concatenate([to_id, list(specials.values())]).astype(np.int64)
            known = np.flatnonzero(to_id >= 0)
            self._to_rank = np.full(n_vocab, -1, dtype=np.int64)  # the inverse: real id -> tiktoken id
            self._to_rank[to_id[known]] = known
        self._to_id = to_id
        self.enc = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks,
                                     special_tokens=tik_specials)
        self.n_vocab = n_vocab or self.enc.n_vocab
        self.bos_id, self.eos_id = self.special_tokens.get(bos), self.special_tokens.get(eos)
        has = lambda *names: [self.special_tokens[s] for s in names if s in self.special_tokens]
        if "<|im_start|>" in self.special_tokens:
            self.chat_format, self.stop_ids = "chatml", has("<|im_end|>", "<|endoftext|>")
        elif "<|start_header_id|>" in self.special_tokens:
            self.chat_format, self.stop_ids = "llama3", has("<|eot_id|>", "<|end_of_text|>")
        else:
            self.chat_format, self.stop_ids = "plain", has("<|endoftext|>")
        if not self.stop_ids and self.eos_id is not None:
            self.stop_ids = [self.eos_id]

    def __repr__(self):
        return f"Tokenizer({self.name!r}, n_vocab={self.n_vocab}, chat_format={self.chat_format!r})"

    # ---- loading -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source) -> "Tokenizer":
        """'gpt2', a .tiktoken file, 'smollm2', a .gguf file, an HF model dir or a hub id."""
        s = str(source)
        if s == "gpt2":
            return cls.from_gpt2()
        if s.endswith(".tiktoken"):
            return cls.from_gpt2(s)
        if s.endswith(".model") and Path(s).is_file():
            return cls.from_llama3_model(s)
        kind, path = resolve_source(source)
        return cls.from_gguf(path) if kind == "gguf" else cls.from_dir(path)

    @classmethod
    def from_gpt2(cls, path=None):
        """GPT-2 from a .tiktoken file ($GPT2_TIKTOKEN, ../shared/data/...), else tiktoken's own download."""
        path = path or next((p for p in GPT2_FILES if p and Path(p).is_file()), None)
        if path is None:
            try:
                enc = tiktoken.get_encoding("gpt2")
            except Exception as e:
                raise WeightFileError(f"can't load GPT-2's BPE (no network?); set GPT2_TIKTOKEN to a "
                                      f"gpt2.tiktoken file or put one at {GPT2_FILES[1]}: {e}") from e
            return cls("gpt2", GPT2_PATTERN, enc._mergeable_ranks, enc._special_tokens, bos="<|endoftext|>",
                       eos="<|endoftext|>")
        ranks = load_tiktoken_file(path)
        return cls("gpt2", GPT2_PATTERN, ranks, {"<|endoftext|>": len(ranks)}, bos="<|endoftext|>",
                   eos="<|endoftext|>")

    @classmethod
    def from_llama3_model(cls, path):
        """Meta's Llama 3 original/tokenizer.model: tiktoken ranks; the 256 specials follow them."""
        ranks = load_tiktoken_file(path)
        specials = {s: len(ranks) + i for i, s in enumerate(LLAMA3_SPECIALS)}
        return cls("llama3", LLAMA3_PATTERN, ranks, specials, bos="<|begin_of_text|>", eos="<|end_of_text|>")

    @classmethod
    def from_gguf(cls, path):
        meta, _ = read_gguf(path, load_tensors=False)
        if meta.get("tokenizer.ggml.model") != "gpt2":
            raise WeightFileError(f"{path}: only byte-level BPE GGUF tokenizers ('gpt2') are supported, "
                                  f"not {meta.get('tokenizer.ggml.model')!r}")
        pre = meta.get("tokenizer.ggml.pre", "default")
        if pre not in GGUF_PATTERNS:
            raise WeightFileError(f"{path}: unsupported pre-tokenizer {pre!r}")
        hint = "the file is damaged or badly converted; download or convert it again"
        bad = lambda key, want: field_error(path, key, want, meta.get(key), hint)
        tokens, types = meta.get("tokenizer.ggml.tokens"), meta.get("tokenizer.ggml.token_type")
        if not (isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens)):
            raise bad("tokenizer.ggml.tokens", "a list of token strings")
        if not (isinstance(types, list) and len(types) == len(tokens) and all(type(t) is int for t in types)):
            raise bad("tokenizer.ggml.token_type", f"a list of {len(tokens)} integers, one per token")
        n_model = f"{meta.get('general.architecture')}.vocab_size"
        if type(meta.get(n_model)) is int and len(tokens) < meta[n_model]:  # ids the model makes, no text
            raise WeightFileError(f"{path}: field 'tokenizer.ggml.tokens' has {len(tokens)} tokens, fewer "
                                  f"than field {n_model!r} ({meta[n_model]}); {hint}")
        bos, eos = (meta.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos"))
        for k, i in (("bos", bos), ("eos", eos)):
            if i is not None and not (type(i) is int and 0 <= i < len(tokens)):
                raise bad(f"tokenizer.ggml.{k}_token_id", f"a token id in [0, {len(tokens)})")
        vocab = {t: i for i, t in enumerate(tokens) if types[i] == 1}  # 1 = normal, 3 = control, 4 = user
        specials = {t: i for i, t in enumerate(tokens) if types[i] != 1}
        return cls.from_bpe(Path(path).stem, GGUF_PATTERNS[pre], vocab, meta.get("tokenizer.ggml.merges"),
                            specials, tokens[bos] if bos is not None else None,
                            tokens[eos] if eos is not None else None, where=(path, "tokenizer.ggml.merges"))

    @classmethod
    def from_dir(cls, path):
        """An HF model dir: tokenizer.json, else Llama 3's tiktoken file (original/)tokenizer.model."""
        path = Path(path)
        names = ["tokenizer.json", "original/tokenizer.model", "tokenizer.model"]
        found = [path / n for n in names if (path / n).is_file()]
        if not found:
            raise WeightFileError(f"no tokenizer in {path}: looked for {', '.join(names)}")
        file = found[0]
        if file.suffix == ".model":
            return cls.from_llama3_model(file)
        tj = read_json(file)
        if not isinstance(tj, dict):
            raise WeightFileError(f"{file}: not a JSON object {{field: value}} but a {type(tj).__name__}; "
                                  "the file is damaged, download it again")
        model, added = tj.get("model"), tj.get("added_tokens", [])
        if not isinstance(model, dict):
            raise field_error(file, "model", "an object {type, vocab, merges}", model)
        if model.get("type") != "BPE" or model.get("byte_fallback") or tj.get("normalizer"):
            raise WeightFileError(f"{file}: only byte-level BPE without a normalizer is supported")
        vocab = model.get("vocab")
        if not (isinstance(vocab, dict) and vocab):
            raise field_error(file, "model.vocab", "an object {token: id}", vocab)
        if not (isinstance(added, list) and all(isinstance(t, dict) and isinstance(t.get("content"), str)
                                                and "id" in t for t in added)):
            raise field_error(file, "added_tokens", "a list of objects {content, id}", added)
        n = len(vocab) + len(added)  # the ids must be below (a table of the largest is allocated)
        ids = ([("model.vocab", t, i) for t, i in vocab.items()]
               + [("added_tokens", t["content"], t["id"]) for t in added])
        for field, token, i in ids:
            if type(i) is not int or not 0 <= i < n:
                raise WeightFileError(f"{file}: field {field!r}: token {token!r} has id {i!r}, not an "
                                      f"integer in [0, {n}); the file is damaged, download it again")
        specials = {t["content"]: t["id"] for t in added}
        vocab = {t: i for t, i in vocab.items() if t not in specials}
        config_file = path / "tokenizer_config.json"
        config = read_json(config_file) if config_file.is_file() else {}
        if not isinstance(config, dict):
            raise WeightFileError(f"{config_file}: not a JSON object {{field: value}}; the file is damaged")
        bos, eos = (config.get(k) for k in ("bos_token", "eos_token"))
        bos, eos = [t.get("content", t) if isinstance(t, dict) else t for t in (bos, eos)]  # {content: ..}
        for field, t in (("bos_token", bos), ("eos_token", eos)):
            if t is not None and not isinstance(t, str):
                raise field_error(config_file, field, "a token string or {content: token string}",
                                  config[field])
        if "<|begin_of_text|>" in specials and not config:
            bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
        return cls.from_bpe(path.name, pattern_of(tj.get("pre_tokenizer"), file), vocab,
                            model.get("merges"), specials, bos, eos, where=(file, "model.merges"))

    @classmethod
    def from_bpe(cls, name, pattern, vocab, merges, specials, bos=None, eos=None, where=None):
        """vocab: token string -> id; merges: 'a b' strings or [a, b] pairs, highest priority first.
        where: (file, field) of the merges, for the errors."""
        file, field = where or (name, "merges")
        if not isinstance(merges, list):
            raise field_error(file, field, "a list of merges 'a b' or [a, b]", merges)
        ranks = {bytes([b]): b for b in range(256)}  # every byte must have a rank for tiktoken
        for i, m in enumerate(merges):
            pair = m.split(" ") if isinstance(m, str) else m
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)
                    and set(pair[0] + pair[1]) <= BYTE_OF_CHAR.keys()):
                raise WeightFileError(f"{file}: field {field!r}: merge {i} is {m!r}, not 'a b' or [a, b] of "
                                      "byte-level tokens; the file is damaged, download it again")
            ranks.setdefault(to_bytes("".join(pair)), len(ranks))  # a repeated result keeps its first rank
        to_id = np.full(len(ranks), -1, dtype=np.int64)
        for token, i in vocab.items():
            try:
                to_id[ranks[to_bytes(token)]] = i
            except KeyError:  # not a byte and made by no merge (or not byte-level): BPE never produces it
                pass
        if (to_id[256:] < 0).any():
            rank = 256 + int(np.flatnonzero(to_id[256:] < 0)[0])
            token = "".join(bytes_to_unicode()[b] for b in next(k for k, r in ranks.items() if r == rank))
            raise WeightFileError(f"{file}: field {field!r}: the result {token!r} of a merge is missing "
                                  "from the vocab; the file is damaged, download it again")
        n_vocab = max([*vocab.values(), *specials.values()]) + 1
        return cls(name, pattern, ranks, specials, to_id, bos, eos, n_vocab)

    # ---- encoding / decoding -------------------------------------------------------------------
    def encode(self, text: str, allow_special=False) -> list[int]:
        """allow_special: strings like '<|im_end|>' become their ids (else they are ordinary text)."""
        ranks = (self.enc.encode(text, allowed_special="all") if allow_special
                 else self.enc.encode_ordinary(text))
        if self._to_id is None:
            return ranks
        ids = self._to_id[np.asarray(ranks, dtype=np.int64)]
        return ids[ids >= 0].tolist()

    def decode_bytes(self, ids) -> bytes:
        """Raw bytes: a single token can be part of a UTF-8 character, so stream with these."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ((ids < 0) | (ids >= self.n_vocab)).any():
            raise ValueError(f"token ids must be in [0, {self.n_vocab}): {ids.tolist()}")
        if self._to_id is not None:
            ids = self._to_rank[ids]
            if (ids < 0).any():
                raise ValueError("a token id with no text (a vocab entry BPE never produces)")
        return self.enc.decode_bytes(ids.tolist())

    def decode(self, ids) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---- chat ----------------------------------------------------------------------------------
    def chat_parts(self, messages: list[dict], add_generation_prompt=True) -> list[tuple[str, bool]]:
        """The model's chat template as (text, is_special) pieces: only the template's own markers are
        special; the contents (text a user or a model wrote) are ordinary text."""
        S, T = (lambda t: (t, True)), (lambda t: (t, False))
        if self.chat_format == "chatml":  # SmolLM2's template, default system prompt included
            if messages and messages[0]["role"] != "system":
                messages = [{"role": "system", "content": SMOLLM_SYSTEM}, *messages]
            parts = [p for m in messages for p in (S("<|im_start|>"), T(f"{m['role']}\n{m['content']}"),
                                                   S("<|im_end|>"), T("\n"))]
            return parts + ([S("<|im_start|>"), T("assistant\n")] if add_generation_prompt else [])
        if self.chat_format == "llama3":  # Llama 3's template trims each content
            parts = [S("<|begin_of_text|>")] + [
                p for m in messages for p in (S("<|start_header_id|>"), T(m["role"]), S("<|end_header_id|>"),
                                              T("\n\n" + m["content"].strip()), S("<|eot_id|>"))]
            return parts + ([S("<|start_header_id|>"), T("assistant"), S("<|end_header_id|>"), T("\n\n")]
                            if add_generation_prompt else [])
        return [T(m["content"]) for m in messages]

    def format_chat(self, messages: list[dict], add_generation_prompt=True) -> str:
        """The model's chat template as a string (special tokens written out)."""
        return "".join(t for t, _ in self.chat_parts(messages, add_generation_prompt))

    def encode_chat(self, messages, add_generation_prompt=True) -> list[int]:
        """The chat template's ids. Unlike HF's apply_chat_template, a special-token string inside a
        content (a response saying '<|im_end|>') stays text: it can neither end a turn nor forge one."""
        ids, text = [], ""
        for t, special in self.chat_parts(messages, add_generation_prompt):
            if special:  # the text between two markers is encoded in one piece, as in the whole string
                ids += self.encode(text) + self.encode(t, allow_special=True)
                text = ""
            else:
                text += t
        return ids + self.encode(text)

    def encode_prompt(self, prompt: str, system=None) -> list[int]:
        """One user message in the chat format (for plain GPT-2: the system text, if any, then the prompt)."""
        if self.chat_format == "plain":
            return self.encode(f"{system}\n\n{prompt}" if system else prompt)
        messages = [{"role": "system", "content": system}] if system else []
        return self.encode_chat(messages + [{"role": "user", "content": prompt}])


def pattern_of(pre, where="tokenizer.json"):
    """The split regex for a tokenizer.json pre_tokenizer: ByteLevel, [Digits, ByteLevel] or
    [Split, ByteLevel]."""
    try:
        steps = pre["pretokenizers"] if pre and pre["type"] == "Sequence" else [pre or {"type": None}]
        types = [s["type"] for s in steps]
        last = steps[-1]
        if types[-1] != "ByteLevel" or last.get("add_prefix_space"):
            raise WeightFileError(f"{where}: unsupported pre_tokenizer {types}: expected byte-level without "
                                  "a prefix space")
        if types == ["ByteLevel"] and last.get("use_regex", True):
            return GPT2_PATTERN
        if types == ["Digits", "ByteLevel"] and steps[0]["individual_digits"] and last.get("use_regex", True):
            return SMOLLM_PATTERN
        if (types == ["Split", "ByteLevel"] and isinstance(steps[0]["pattern"].get("Regex"), str)
                and not last.get("use_regex", True) and steps[0].get("behavior") == "Isolated"
                and not steps[0].get("invert")):
            return steps[0]["pattern"]["Regex"]
    except (KeyError, TypeError, IndexError, AttributeError):  # not the objects a tokenizer.json has
        raise field_error(where, "pre_tokenizer", "a ByteLevel pre-tokenizer object", pre) from None
    raise WeightFileError(f"{where}: unsupported pre_tokenizer {types}")
