#!/usr/bin/env python3
"""mkzips.py DIR: hostile archives for a warren --root DIR.
 names.zip  entries named ../up.txt, /abs.txt, a\\..\\b.txt, nul\\0.txt, dup.txt twice, d%2e%2e/x, dir/ with data
 bomb.zip   bomb.bin: 2 GiB of zeros deflated (~2 MB); lie.zip: entry whose CD sizes lie (says 10 B, inflates to 64 MiB)
 biglie.zip entry claiming 2^40 uncompressed size with 1 KiB of data; trunc.zip (cut in half); cdbad.zip (CD offset past EOF);
 manyents.zip EOCD claiming 65535 entries / huge CD size with no CD; zip64lie.zip ZIP64 EOCD claiming 2^60 entries"""
import zipfile, zlib, struct, sys, os, io
d = sys.argv[1]
with zipfile.ZipFile(f"{d}/names.zip", "w") as z:
    for n in ["../up.txt", "/abs.txt", "a\\..\\b.txt", "nul\0.txt", "dup.txt", "d%2e%2e/x.txt", "ok.txt", "sp ace.txt", "\u00e9.txt", "x/../../y.txt", "./dot.txt", "a//b.txt"]:
        zi = zipfile.ZipInfo(n); z.writestr(zi, b"content of " + n.encode("utf-8", "replace"))
    import warnings; warnings.simplefilter("ignore")
    z.writestr("dup.txt", b"second dup")
    z.writestr(zipfile.ZipInfo("dir/"), b"data in a directory entry")
# bomb: stream 2 GiB zeros through zlib raw deflate, write the archive by hand
def write_entry(f, name, comp, crc, usize, csize, method=8):
    off = f.tell(); nb = name.encode()
    f.write(struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, method, 0, 0, crc, csize, usize, len(nb), 0) + nb); f.write(comp)
    return (off, nb, crc, csize, usize, method)
def finish(f, ents):
    cd = f.tell()
    for off, nb, crc, csize, usize, method in ents:
        f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, method, 0, 0, crc, csize, usize, len(nb), 0, 0, 0, 0, 0, off) + nb)
    end = f.tell()
    f.write(struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(ents), len(ents), end - cd, cd, 0))
co = zlib.compressobj(9, zlib.DEFLATED, -15); crc = 0; comp = io.BytesIO(); zero = b"\0" * (1 << 22)
N = int(os.environ.get("BOMB_MIB", "2048"))
for i in range(N // 4):
    comp.write(co.compress(zero)); crc = zlib.crc32(zero, crc)
comp.write(co.flush())
c = comp.getvalue()
with open(f"{d}/bomb.zip", "wb") as f:
    e = write_entry(f, "bomb.bin", c, crc, N << 20, len(c)); finish(f, [e])
# lie: CD says 10 bytes uncompressed, data inflates to 64 MiB
co = zlib.compressobj(9, zlib.DEFLATED, -15); big = b"\0" * (64 << 20); c2 = co.compress(big) + co.flush()
with open(f"{d}/lie.zip", "wb") as f:
    e = write_entry(f, "lie.bin", c2, zlib.crc32(big[:10]), 10, len(c2)); finish(f, [e])
# biglie: claims 2^32-2 bytes (max non-zip64) uncompressed with 1 KiB
co = zlib.compressobj(9, zlib.DEFLATED, -15); small = b"a" * 1024; c3 = co.compress(small) + co.flush()
with open(f"{d}/biglie.zip", "wb") as f:
    e = write_entry(f, "biglie.bin", c3, zlib.crc32(small), 0xfffffffe, len(c3)); e2 = write_entry(f, "stored.bin", small, zlib.crc32(small), 0xfffffffe, 0xfffffffe, method=0); finish(f, [e, e2])
# truncated
raw = open(f"{d}/names.zip", "rb").read()
open(f"{d}/trunc.zip", "wb").write(raw[: len(raw) // 2])
# CD offset past EOF
b = bytearray(raw); i = b.rfind(b"PK\x05\x06"); struct.pack_into("<I", b, i + 16, 0x7fffffff); open(f"{d}/cdbad.zip", "wb").write(b)
# EOCD claiming 65535 entries and 0xffffff00 CD bytes
with open(f"{d}/manyents.zip", "wb") as f:
    f.write(struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffff00, 0, 0))
# ZIP64 EOCD claiming 2^60 entries
with open(f"{d}/zip64lie.zip", "wb") as f:
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, 1 << 60, 1 << 60, 1 << 62, 0)
    f.write(z64); f.write(struct.pack("<IIQI", 0x07064b50, 0, 0, 1))
    f.write(struct.pack("<IHHHHIIH", 0x06054b50, 0xffff, 0xffff, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0))
# local header offset pointing into itself / data offset past EOF
with open(f"{d}/lhbad.zip", "wb") as f:
    e = write_entry(f, "x.txt", b"hello", zlib.crc32(b"hello"), 5, 5, method=0)
    e = (0x7ffffff0,) + e[1:]; finish(f, [e])
# method 99 (AES) and method 12 (bzip2)
with open(f"{d}/methods.zip", "wb") as f:
    a = write_entry(f, "aes.txt", b"xxxxx", 0, 5, 5, method=99); b_ = write_entry(f, "bz.txt", b"xxxxx", 0, 5, 5, method=12); finish(f, [a, b_])
print("ok")
