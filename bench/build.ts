/**
 * Build benchmark: cold (no layer cache) and warm build time of every image, and the
 * tool's overhead against a raw `docker build` of the very same context.
 *
 *   npx tsx bench/build.ts [--skip-cold]      (or as a section of `npm run bench`)
 *
 * Needs the daemon. The debian:12 base is reused (made with `ctun-build base` logic
 * when missing); the simulator image gets its Python wheels from the product's maker
 * (makeSeedWheels: Debian's packages repacked, plus local stand-ins). Target: warm
 * rebuild of all ≤ 5 s.
 * Results: printed, and bench/results/build-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { metadata, silentLogger } from '../tools/common/index.js';
import {
  describeTarball,
  executeBase,
  executeBuildPlan,
  makeSeedWheels,
  materializeContext,
  planBaseImage,
  planCtun,
  planVeos,
  projectPaths,
  readAptSources,
  type BuildPlan,
  type BuiltImage,
} from '../tools/image/index.js';
import { connectDocker } from '../tools/docker/index.js';
import { buildStandinTarball } from '../tools/simulator/index.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const BASE = 'debian:12';

export interface ImageTiming {
  image: string;
  coldSeconds?: number;
  warmSeconds: number;
  rawWarmSeconds: number;
  /** warm / raw warm: what the tool adds (bundle, context assembly, tar) on a cache hit. */
  overhead: number;
}

export interface BuildBenchResult {
  images: ImageTiming[];
  warmTotalSeconds: number;
  rawWarmTotalSeconds: number;
  coldTotalSeconds?: number;
  targetWarmSeconds: number;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t = process.hrtime.bigint();
  const r = await f();
  return [r, Number(process.hrtime.bigint() - t) / 1e9];
}

/** A raw classic-builder `docker build` of the same context the tool would send. */
async function rawBuild(plan: BuildPlan, id: string, work: string): Promise<number> {
  const step = plan.images.find((i) => i.id === id)!;
  const dir = await mkdtemp(join(work, `raw-${id}-`));
  await materializeContext(step, projectPaths(), dir);
  const [, s] = await timed(() =>
    execa('docker', ['build', '-q', dir], { env: { DOCKER_BUILDKIT: '0' } }), // untagged: leaves the tool's images as they are
  );
  await rm(dir, { recursive: true, force: true });
  return s;
}

export async function runBuildBench(options: { cold?: boolean; log?: (s: string) => void } = {}): Promise<BuildBenchResult> {
  const log = options.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const docker = connectDocker();
  await docker.ping();
  const paths = projectPaths();
  const work = await mkdtemp(join(tmpdir(), 'ctun-bench-build-'));
  try {
    if (!(await docker.imageExists(BASE))) {
      log(`making ${BASE} from the host's apt mirror (once)`);
      await executeBase(planBaseImage({}, await readAptSources()), { docker, logger: silentLogger });
    }
    const tarball = await describeTarball((await buildStandinTarball({ outDir: join(work, 'in') })).path);
    const w = join(work, 'wheels');
    const { files } = await makeSeedWheels({ outDir: w, logger: silentLogger });
    const plans = (noCache: boolean): BuildPlan[] => [
      planCtun({ eula: 'acceptDspaceEula', distro: 'debian', noCache }, paths),
      planVeos({ eula: 'acceptDspaceEula', distro: 'debian', noCache, mode: 'online', image: metadata.images.veos, tarball, installCtun: false, wheels: { dir: w, files } }, paths),
      planVeos({ eula: 'acceptDspaceEula', distro: 'debian', noCache, mode: 'online', image: metadata.images.veosCtun, tarball, installCtun: true, wheels: { dir: w, files } }, paths),
    ];
    const run = async (noCache: boolean): Promise<Map<string, number>> => {
      const times = new Map<string, number>();
      for (const plan of plans(noCache)) {
        const built: BuiltImage[] = await executeBuildPlan(plan, { docker, logger: silentLogger, paths });
        for (const b of built) times.set(b.tags[0]!, (times.get(b.tags[0]!) ?? 0) + b.seconds);
      }
      return times;
    };
    let cold: Map<string, number> | undefined;
    if (options.cold !== false) {
      log('cold builds (no layer cache)…');
      cold = await run(true);
    } else {
      await run(false); // make sure everything exists before measuring warm
    }
    log('warm builds…');
    const [warm, warmTotal] = await timed(() => run(false));
    log('raw docker build of the same contexts…');
    const raw = new Map<string, number>();
    for (const plan of plans(false)) {
      for (const step of plan.images) raw.set(step.tags[0]!, (raw.get(step.tags[0]!) ?? 0) + (await rawBuild(plan, step.id, work)));
    }
    const images: ImageTiming[] = [...warm.keys()].map((image) => {
      const t: ImageTiming = {
        image,
        warmSeconds: warm.get(image)!,
        rawWarmSeconds: raw.get(image)!,
        overhead: warm.get(image)! / raw.get(image)!,
      };
      if (cold) t.coldSeconds = cold.get(image)!;
      return t;
    });
    const result: BuildBenchResult = {
      images,
      warmTotalSeconds: warmTotal,
      rawWarmTotalSeconds: [...raw.values()].reduce((a, b) => a + b, 0),
      targetWarmSeconds: 5,
    };
    if (cold) result.coldTotalSeconds = [...cold.values()].reduce((a, b) => a + b, 0);
    const f = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(2).padStart(7));
    log(`\n${'image'.padEnd(40)} ${'cold s'.padStart(7)} ${'warm s'.padStart(7)} ${'raw s'.padStart(7)} ${'tool/raw'.padStart(8)}`);
    for (const i of images) log(`${i.image.padEnd(40)} ${f(i.coldSeconds)} ${f(i.warmSeconds)} ${f(i.rawWarmSeconds)} ${i.overhead.toFixed(2).padStart(7)}x`);
    log(
      `${'all'.padEnd(40)} ${f(result.coldTotalSeconds)} ${f(result.warmTotalSeconds)} ${f(result.rawWarmTotalSeconds)} ${(result.warmTotalSeconds / result.rawWarmTotalSeconds).toFixed(2).padStart(7)}x` +
        `   (warm target ≤ ${result.targetWarmSeconds} s: ${result.warmTotalSeconds <= result.targetWarmSeconds ? 'met' : 'MISSED'})`,
    );
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const result = await runBuildBench({ cold: !process.argv.includes('--skip-cold') });
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const file = join(ROOT, 'bench/results', `build-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`results: ${file}\n`);
}
