/**
 * `strip --strip-all` for the pinned Node binary, without binutils. Node's release
 * binary carries 18 MB of symbol table and debug sections that nothing reads at run
 * time (the dynamic symbols an addon links against are in `.dynsym`, which is
 * loaded and kept). Every tunnel image carries the binary, so they are cut when the
 * runtime context is made — on the building host, which need not have binutils.
 *
 * Only the simple, common layout is cut: all sections the program loads first, then
 * the ones it does not (symbols, debug info, notes of the build), then the section
 * header table — the layout of Node's releases and of anything `ld` links. Any other
 * file (not ELF64 little-endian, sections interleaved) is copied unchanged.
 */
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, open, rename, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const SHF_ALLOC = 0x2n;
const SHT_NOBITS = 8;
const SHDR_SIZE = 64;

interface Section {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  offset: number;
  size: number;
  link: number;
  raw: Buffer;
}

/** What {@link stripElf} did: `stripped` with the bytes saved, or `copied` and why not. */
export type StripOutcome = { done: 'stripped'; saved: number } | { done: 'copied'; reason: string };

/**
 * Writes `source` to `target` without the sections a running program never reads
 * (symbol tables, debug info, build notes): those not loaded (`SHF_ALLOC` unset)
 * except the section names. Copies the file unchanged when it cannot do that safely.
 */
export async function stripElf(source: string, target: string): Promise<StripOutcome> {
  const file = await open(source, 'r');
  let plan: { cut: number; kept: Section[]; names: Section } | string;
  let size: number;
  try {
    size = (await file.stat()).size;
    plan = await planStrip(file, size);
  } finally {
    await file.close();
  }
  await copyFile(source, target);
  if (typeof plan === 'string') return { done: 'copied', reason: plan };
  const { cut, kept, names } = plan;
  // The file up to the end of what is loaded, then the section names, then the
  // section header table of the kept sections (their indices unchanged: all cut
  // sections come after them).
  await truncate(target, cut);
  const out = await open(target, 'r+');
  try {
    const namesData = Buffer.alloc(names.size);
    const src = await open(source, 'r');
    try {
      await src.read(namesData, 0, names.size, names.offset);
    } finally {
      await src.close();
    }
    const namesAt = cut;
    const shoff = align(namesAt + names.size, 8);
    const table = Buffer.alloc(SHDR_SIZE * (kept.length + 1));
    kept.forEach((s, i) => s.raw.copy(table, i * SHDR_SIZE));
    const namesHeader = Buffer.from(names.raw);
    namesHeader.writeBigUInt64LE(BigInt(namesAt), 24);
    namesHeader.copy(table, kept.length * SHDR_SIZE);
    await out.write(namesData, 0, namesData.length, namesAt);
    await out.write(table, 0, table.length, shoff);
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(BigInt(shoff));
    await out.write(header, 0, 8, 0x28);
    const counts = Buffer.alloc(4);
    counts.writeUInt16LE(kept.length + 1, 0); // e_shnum
    counts.writeUInt16LE(kept.length, 2); // e_shstrndx
    await out.write(counts, 0, 4, 0x3c);
    return { done: 'stripped', saved: size - (shoff + table.length) };
  } finally {
    await out.close();
  }
}

const align = (n: number, to: number): number => Math.ceil(n / to) * to;

async function planStrip(file: Awaited<ReturnType<typeof open>>, size: number): Promise<{ cut: number; kept: Section[]; names: Section } | string> {
  const head = Buffer.alloc(64);
  await file.read(head, 0, 64, 0);
  if (head.readUInt32BE(0) !== 0x7f454c46) return 'not an ELF file';
  if (head[4] !== 2 || head[5] !== 1) return 'not a 64-bit little-endian ELF file';
  const phoff = Number(head.readBigUInt64LE(0x20));
  const shoff = Number(head.readBigUInt64LE(0x28));
  const phentsize = head.readUInt16LE(0x36);
  const phnum = head.readUInt16LE(0x38);
  const shentsize = head.readUInt16LE(0x3a);
  const shnum = head.readUInt16LE(0x3c);
  const shstrndx = head.readUInt16LE(0x3e);
  if (shentsize !== SHDR_SIZE || shnum === 0 || shstrndx >= shnum || shoff + shnum * SHDR_SIZE > size) return 'no usable section header table';

  const table = Buffer.alloc(shnum * SHDR_SIZE);
  await file.read(table, 0, table.length, shoff);
  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const raw = table.subarray(i * SHDR_SIZE, (i + 1) * SHDR_SIZE);
    sections.push({
      index: i,
      name: '',
      type: raw.readUInt32LE(4),
      flags: raw.readBigUInt64LE(8),
      offset: Number(raw.readBigUInt64LE(24)),
      size: Number(raw.readBigUInt64LE(32)),
      link: raw.readUInt32LE(40),
      raw,
    });
  }
  const names = sections[shstrndx]!;
  const nameData = Buffer.alloc(names.size);
  await file.read(nameData, 0, names.size, names.offset);
  for (const s of sections) {
    const at = s.raw.readUInt32LE(0);
    s.name = nameData.toString('latin1', at, nameData.indexOf(0, at));
  }

  const loaded = (s: Section): boolean => s.index === 0 || (s.flags & SHF_ALLOC) !== 0n;
  const firstCut = sections.findIndex((s) => !loaded(s));
  if (firstCut < 0 || sections.slice(firstCut).every((s) => s.index === shstrndx)) return 'nothing to strip';
  if (sections.slice(firstCut).some(loaded)) return 'loaded and unloaded sections are interleaved';
  const kept = sections.slice(0, firstCut);
  if (kept.some((s) => s.link >= firstCut)) return 'a loaded section links to one that would be cut';

  // The end of everything loaded: sections with file data and every segment.
  let cut = phoff + phnum * phentsize;
  for (const s of kept) if (s.type !== SHT_NOBITS) cut = Math.max(cut, s.offset + s.size);
  const ph = Buffer.alloc(phnum * phentsize);
  await file.read(ph, 0, ph.length, phoff);
  for (let i = 0; i < phnum; i++) {
    const p = ph.subarray(i * phentsize);
    cut = Math.max(cut, Number(p.readBigUInt64LE(8)) + Number(p.readBigUInt64LE(32)));
  }
  if (cut >= size) return 'nothing after the loaded part';
  return { cut, kept, names };
}

/**
 * The stripped copy of `source`, made once per version of it and kept in `cacheDir`
 * (default: the OS temp folder). A build context hard-links it like any input, so
 * its identity (inode, mtime) — what the context digest of a large file is — stays
 * the same from build to build and an up-to-date runtime image is not built again.
 */
export async function strippedCopy(source: string, cacheDir = join(tmpdir(), 'ctun-stripped')): Promise<string> {
  const st = await stat(source);
  const key = createHash('sha256').update(`${source} ${st.dev} ${st.ino} ${st.size} ${st.mtimeMs}`).digest('hex').slice(0, 16);
  const target = join(cacheDir, `${key}-${basename(source)}`);
  if (await stat(target).then(() => true, () => false)) return target;
  await mkdir(cacheDir, { recursive: true });
  const part = `${target}.${process.pid}.part`;
  await stripElf(source, part);
  await chmod(part, st.mode & 0o777);
  await rename(part, target);
  return target;
}
