import { readFileSync } from 'node:fs';

/**
 * glibc's tunable that has malloc advise transparent huge pages (MADV_HUGEPAGE) on the memory it
 * maps: onnxruntime's prepacked weights, the page pool and every other large buffer of the process.
 * Linux's default THP mode, `madvise`, gives huge pages only to memory so advised, and node cannot
 * advise its own buffers, so the variable must be in the environment node starts with: `npm start`
 * and the Dockerfile set it. On a 2-core VM whose 4 KiB page faults cost ~13 µs each, a server
 * of the TinyLlama shape (4.3 GB of f32 weights prepacked) answered /health after 28.7 s with
 * 4 KiB pages and 14.4 s with huge pages, at the same RSS and decode speed (medians of 3,
 * bench/results/startup-huge-pages.md); a rank-8 adapter written into never-touched pool pages
 * took ~100 ms against ~10 ms (a scratch run).
 */
export const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/** Where Linux says which transparent-huge-page mode is in force ("always [madvise] never"). */
const THP_MODE_FILE = '/sys/kernel/mm/transparent_hugepage/enabled';

/**
 * `env` with the tunable added to whatever GLIBC_TUNABLES already holds (a colon-separated list),
 * unless that already says how malloc should use huge pages (`hugetlb=0` included: glibc reads the
 * list in order, so an appended value would override the user's choice).
 */
export function withHugePagesTunable(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (namesHugePagesTunable(env)) return env;
  const tunables = env.GLIBC_TUNABLES;
  return { ...env, GLIBC_TUNABLES: tunables ? `${tunables}:${HUGE_PAGES_TUNABLE}` : HUGE_PAGES_TUNABLE };
}

/** Whether GLIBC_TUNABLES sets glibc.malloc.hugetlb at all (any value, 0 too). */
export function namesHugePagesTunable(env: NodeJS.ProcessEnv): boolean {
  return tunables(env).some((tunable) => tunable.startsWith('glibc.malloc.hugetlb='));
}

/**
 * Whether GLIBC_TUNABLES asks malloc for huge pages of any kind: 1 (transparent ones, advised), 2
 * or a page size (reserved hugetlbfs pages, which the administrator set up on purpose).
 */
export function hasHugePagesTunable(env: NodeJS.ProcessEnv): boolean {
  return tunables(env).some((tunable) => /^glibc\.malloc\.hugetlb=[1-9]\d*$/.test(tunable));
}

function tunables(env: NodeJS.ProcessEnv): string[] {
  return (env.GLIBC_TUNABLES ?? '').split(':').map((tunable) => tunable.trim());
}

/**
 * A start-up notice when this process's large buffers get 4 KiB pages though huge pages were one
 * variable away: Linux in `madvise` mode and GLIBC_TUNABLES without the tunable. Null elsewhere
 * (THP `always` or `never`, no THP, not Linux, or hugetlb set to any value: the user's choice). glibc reads the variable
 * only at exec, so the process cannot fix it for itself.
 */
export function hugePagesNotice(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  readMode: () => string = () => readFileSync(THP_MODE_FILE, 'utf8'),
): string | null {
  if (platform !== 'linux' || namesHugePagesTunable(env)) return null;
  let mode: string;
  try {
    mode = readMode();
  } catch {
    return null;
  }
  if (!mode.includes('[madvise]')) return null;
  return `transparent huge pages are in madvise mode and GLIBC_TUNABLES lacks ${HUGE_PAGES_TUNABLE}: the weights onnxruntime prepacks, the page pool and adapter loads are faulted in 4 KiB at a time, which can make start-up several times slower; \`npm start\` and the Docker image set GLIBC_TUNABLES=${HUGE_PAGES_TUNABLE}, so start node the same way`;
}
