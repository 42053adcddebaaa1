#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (standard library only).

The files are committed; rerun this only to change them: python3 fuzz/make_seeds.py
"""
import io
import json
import os
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- safetensors: 8-byte little-endian header length, JSON header, raw data --------------------
def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


put("fuzz_safetensors", "f32_2x3", safetensors(
    [("w", "F32", [2, 3], struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, 7))], {"format": "pt"}))
put("fuzz_safetensors", "all_dtypes", safetensors([
    ("a.bf16", "BF16", [2], b"\x80\x3f\x00\x40"),
    ("b.f16", "F16", [1, 2], struct.pack("<2e", 1.5, -2.0)),
    ("c.f64", "F64", [1], struct.pack("<d", 3.25)),
    ("d.i64", "I64", [2], struct.pack("<2q", -1, 1 << 40)),
    ("e.i32", "I32", [3], struct.pack("<3i", 7, -8, 9)),
    ("f.empty", "F32", [0, 4], b""),
    ("g.scalar", "F32", [], struct.pack("<f", 42.0)),
], {"format": "pt", "note": "seed"}))
put("fuzz_safetensors", "empty_header", safetensors([], None, pad=False))
put("fuzz_safetensors", "unpadded_two", safetensors(
    [("x", "I32", [2, 2], struct.pack("<4i", 1, 2, 3, 4)), ("y", "F32", [1], struct.pack("<f", -0.5))], None, pad=False))


# --- torch.save zips and the pickles inside them ------------------------------------------------
def s(text):  # BINUNICODE
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def k(n):  # BININT1 / BININT2 / BININT
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    return b"J" + struct.pack("<i", n)


def tup(items):
    items = list(items)
    if len(items) == 1:
        return items[0] + b"\x85"
    if len(items) == 2:
        return items[0] + items[1] + b"\x86"
    if len(items) == 3:
        return items[0] + items[1] + items[2] + b"\x87"
    return b"(" + b"".join(items) + b"t"


def state_dict_pickle(entries):
    """entries: (name, storage type, key, storage numel, offset, size, stride), as torch.save pickles
    a state dict (protocol 2, memoised globals)."""
    out = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01("
    first = True
    for name, stype, key, numel, offset, size, stride in entries:
        out += s(name)
        out += b"ctorch._utils\n_rebuild_tensor_v2\nq\x02" if first else b"h\x02"
        out += b"((" + s("storage") + b"ctorch\n" + stype.encode() + b"\n" + s(key) + s("cpu") + k(numel) + b"tQ"
        out += k(offset) + tup(k(x) for x in size) + tup(k(x) for x in stride)
        out += b"\x89h\x00)RtR"
        first = False
    return out + b"u."


def torch_zip(pickle, storages, archive="archive"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(archive + "/data.pkl", pickle)
        for key, raw in storages.items():
            z.writestr(archive + "/data/" + key, raw)
        z.writestr(archive + "/version", b"3\n")
    return buf.getvalue()


pkl = state_dict_pickle([
    ("embeddings.weight", "FloatStorage", "0", 6, 0, [2, 3], [3, 1]),
    ("embeddings.position_ids", "LongStorage", "1", 4, 0, [1, 4], [4, 1]),
    ("layer.bias", "FloatStorage", "0", 6, 3, [3], [1]),  # a view into a shared storage
    ("layer.weight_t", "FloatStorage", "0", 6, 0, [3, 2], [1, 3]),  # transposed
])
put("fuzz_torch_pickle", "tiny_model.bin", torch_zip(pkl, {
    "0": struct.pack("<6f", 0.5, -1, 2, 3, 4, 5),
    "1": struct.pack("<4q", 0, 1, 2, 3),
}, archive="pytorch_model"))
# Bare pickles: the fuzz entry wraps them in a zip with storages data/0 (64 bytes), data/1 (256),
# data/2 (empty) and data/3 (3 bytes).
put("fuzz_torch_pickle", "pickle_state_dict", pkl)
put("fuzz_torch_pickle", "pickle_dtypes", state_dict_pickle([
    ("half", "HalfStorage", "0", 32, 0, [4, 8], [8, 1]),
    ("bf16", "BFloat16Storage", "1", 4, 2, [2], [1]),
    ("double", "DoubleStorage", "1", 32, 0, [32], [1]),
    ("int", "IntStorage", "0", 16, 1, [5], [3]),
    ("byte", "ByteStorage", "3", 3, 0, [3], [1]),
    ("bool", "BoolStorage", "2", 0, 0, [0], [1]),
    ("empty", "FloatStorage", "2", 0, 0, [0, 5], [5, 1]),
]))
put("fuzz_torch_pickle", "pickle_foreign_global",
    b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R.")
put("fuzz_torch_pickle", "pickle_plain_dict",
    b"\x80\x02}q\x00(" + s("a") + b"ctorch._utils\n_rebuild_tensor_v2\n((" + s("storage") +
    b"ctorch\nLongStorage\n" + s("1") + s("cpu") + b"\x8a\x01\x08tQK\x00K\x08\x85K\x01\x85\x89}tRu.")

# --- tokenizers ---------------------------------------------------------------------------------
for i, text in enumerate([
    "CCO", "c1ccccc1Cl", "C[C@@H](N)C(=O)O", "N#Cc1ccccc1Br", "C%10CCBr.[Na+]", "F/C=C/F",
    "CC(=O)Oc1ccccc1C(=O)O", "O=C(O)[C@H]1CCCN1",
]):
    put("fuzz_bpe", "smiles_%d" % i, text)
    put("fuzz_smiles", "smiles_%d" % i, text)
put("fuzz_bpe", "text_contractions", "it's 42!  We'll see\tyou\n\nthere, ok?  ")
put("fuzz_bpe", "text_unicode", "caf\u00e9 \u00e9l\u00e8ve \u4e2d\u6587 \U0001f600 \xa0x")
put("fuzz_bpe", "load_tiny_vocab",
    b"\0" + json.dumps({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "C": 5, "O": 6, "CC": 7,
                        "CCO": 8, "\u0120": 9, "\u0120C": 10}).encode()
    + b"\0#version: 0.2\nC C\nCC O\n\xc4\xa0 C\n\0CCO CC O")
put("fuzz_bpe", "gpt2_text", b"\2Hello, world! It's 42 \xe2\x80\x94 caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87<|endoftext|> ok")
put("fuzz_bpe", "gpt2_invalid_utf8", b"\2ab\xff\xfe \xc3( \xe2\x82 x\xf0\x9f\x99")
for name, text in [
    ("uncased_text", b"\x02Hello, WORLD! H\xc3\xa9llo na\xc3\xafve \xe4\xb8\x9c\xe4\xba\xac unaffable [SEP] x"),
    ("cased_text", b"\x01The Quick [CLS]brown fox: don't stop\t\n \xe2\x80\x94 \xef\xac\x81 \xc4\xb0stanbul"),
    ("invalid_utf8", b"\x02caf\xc3 ok \xff\xfe\x80ab \xed\xa0\x80 \xf4\x90\x80\x80 \x00\x01 z"),
    ("long_word", b"\x02" + b"x" * 120 + b" ok"),
]:
    put("fuzz_wordpiece", name, text)
put("fuzz_wordpiece", "load_tiny_vocab", b"\0[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\n\0unaffable Unaff")
put("fuzz_smiles", "smiles_bad_char", "CCX")
put("fuzz_smiles", "smiles_ring_percent", "C%12CC%1")
put("fuzz_smiles", "load_vocab",
    b"\0" + json.dumps({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "C": 5, "O": 6, "[Na+]": 7}).encode()
    + b"\0CCO.[Na+]Cl")
put("fuzz_smiles", "build_corpus", b"\1CCO\nc1ccccc1\nC[C@@H](N)C(=O)O\n\nCCO")
