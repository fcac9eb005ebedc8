/** Command-line options of `npm run bench` and the workload sizes of each mode. */
import { parseArgs } from 'node:util';

/** What the user asked for on the command line. */
export interface BenchOptions {
  readonly quick: boolean;
  readonly rounds: number;
  /** Server names to run (ratchet always included when listed), or all that are available. */
  readonly only: readonly string[] | undefined;
  readonly build: boolean;
  readonly install: boolean;
  readonly keep: boolean;
  readonly restic: boolean;
  /** Also Ratchet and rclone on S3 (a local Ceph RGW): the S3 rows. */
  readonly s3: boolean;
  readonly outDir: string | undefined;
  /** Also Ratchet with --workers n for each n: the scaling rows (ratchet-w<n>). */
  readonly workers: readonly number[];
}

/** Counts and time caps of one mode. Every loop of the bench is bounded by these. */
export interface Sizes {
  readonly rounds: number;
  /** Objects per 16 MiB upload measurement, by concurrency. */
  readonly bigUploads: Readonly<Record<1 | 2 | 8, number>>;
  readonly smallUploads: number;
  readonly rangeGets: Readonly<Record<1 | 8, number>>;
  readonly fullGets: number;
  readonly heads: number;
  readonly listObjects: number;
  /** Listings timed per server per round. */
  readonly listRepeats: number;
  /** Seconds after which a throughput measurement stops issuing requests. */
  readonly capSeconds: number;
  /** Generated data set for the restic end-to-end run. */
  readonly dataset: { readonly largeFiles: number; readonly largeMiB: number; readonly smallFiles: number };
  /** Seconds one restic command may take before it is killed. */
  readonly resticStepSeconds: number;
  /** The whole run stops starting new rounds after this many seconds. */
  readonly budgetSeconds: number;
}

const quickSizes: Sizes = {
  rounds: 2,
  bigUploads: { 1: 6, 2: 8, 8: 16 },
  smallUploads: 1500,
  rangeGets: { 1: 500, 8: 1500 },
  fullGets: 12,
  heads: 4000,
  listObjects: 100_000,
  listRepeats: 2,
  capSeconds: 5,
  dataset: { largeFiles: 6, largeMiB: 4, smallFiles: 200 },
  resticStepSeconds: 60,
  budgetSeconds: 165,
};

const fullSizes: Sizes = {
  rounds: 7,
  bigUploads: { 1: 16, 2: 24, 8: 32 },
  smallUploads: 6000,
  rangeGets: { 1: 2000, 8: 6000 },
  fullGets: 48,
  heads: 20_000,
  listObjects: 100_000,
  listRepeats: 3,
  capSeconds: 15,
  dataset: { largeFiles: 16, largeMiB: 8, smallFiles: 1500 },
  resticStepSeconds: 300,
  budgetSeconds: 27 * 60,
};

const usage = `Usage: npm run bench -- [options]

  --quick          smoke run: smaller counts, under 3 minutes
  --rounds N       repetitions of the whole workload (default 7, quick 2)
  --only LIST      comma-separated servers: ratchet,rclone,nginx,rest-server
  --no-build       do not run \`npm run build\` first (uses dist/ as it is)
  --no-install     do not apt-get install missing peers (they are skipped)
  --no-restic      skip the restic end-to-end steps
  --s3             add ratchet-s3 and rclone-s3: both on a local Ceph RGW (S3), started with
                   scripts/ceph-s3/start-ceph-s3.sh (or reused); their listing has 10k objects
  --workers LIST   also Ratchet with --workers n for each n of the list (e.g. 2,4): ratchet-w<n>
  --keep           keep the temporary folder (data, logs) for inspection
  --out DIR        where to write results (default bench/results)
  -h, --help       this text

Environment: REST_SERVER_BIN=/path/to/rest-server adds restic's rest-server as a peer;
RATCHET_BASE_ENTRY=/path/to/base/dist/cli/main.js adds an earlier build as ratchet-base.`;

/** Parses argv (without node and script); prints usage and exits on --help or a bad flag. */
export function parseOptions(argv: readonly string[]): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        quick: { type: 'boolean', default: false },
        rounds: { type: 'string' },
        only: { type: 'string' },
        'no-build': { type: 'boolean', default: false },
        'no-install': { type: 'boolean', default: false },
        'no-restic': { type: 'boolean', default: false },
        s3: { type: 'boolean', default: false },
        keep: { type: 'boolean', default: false },
        out: { type: 'string' },
        workers: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const quick = values.quick;
  let rounds = quick ? quickSizes.rounds : fullSizes.rounds;
  if (values.rounds !== undefined) {
    rounds = Number(values.rounds);
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
      console.error('bench: --rounds must be an integer from 1 to 20');
      process.exit(2);
    }
  }
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const workers = (values.workers ?? '')
    .split(',')
    .filter((s) => s.trim() !== '')
    .map(Number);
  if (workers.some((n) => !Number.isInteger(n) || n < 2 || n > 64)) {
    console.error('bench: --workers takes worker counts from 2 to 64, e.g. 2,4');
    process.exit(2);
  }
  return {
    quick,
    rounds,
    workers,
    only,
    build: !values['no-build'],
    install: !values['no-install'],
    keep: values.keep,
    restic: !values['no-restic'],
    s3: values.s3,
    outDir: values.out,
  };
}

/** The workload sizes for the chosen mode and round count. */
export function sizesFor(options: BenchOptions): Sizes {
  const base = options.quick ? quickSizes : fullSizes;
  return { ...base, rounds: options.rounds };
}
