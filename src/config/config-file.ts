/**
 * The YAML configuration file: the options' keys (their flag names, schema derived from the
 * option table) plus what flags cannot say well — listeners with their role ceilings, quotas,
 * rate limits and access grants, whose schema is written out here.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { compilePattern } from '../access/grants.ts';
import { roles } from '../access/policy.ts';
import { parseTrustedPeers } from '../http/client-address.ts';
import { parseListenAddress } from './listen-address.ts';
import type { OptionKind, OptionLayer, OptionName, OptionValue } from './options.ts';
import { fileKey, fileOptionNames, options, UsageError } from './options.ts';
import { parseSize } from './sizes.ts';
import { parseDuration } from '../util/durations.ts';

/** A string the given parser accepts; its Error becomes the schema's message. */
function parsedBy(parse: (text: string) => unknown, message: string): z.ZodType<string> {
  return z.string().refine(
    (text) => {
      try {
        parse(text);
        return true;
      } catch {
        return false;
      }
    },
    { message },
  );
}

const listenText = parsedBy(parseListenAddress, 'expected host:port, :port, [ipv6]:port or unix:/path');
const peerText = parsedBy(
  (text: string) => parseTrustedPeers([text]),
  'expected unix, an IP address or a network such as 10.0.0.0/8',
);
const pattern = parsedBy(compilePattern, 'expected a repository pattern such as /{user}/** or /servers/*/');

/** A number or text read by `parse` (sizes, durations), its error as the schema's message. */
const readBy = (parse: (value: string | number) => number) =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    try {
      return parse(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
const size = readBy(parseSize);
const duration = readBy(parseDuration);

/** The schema of an option's file value, from its kind in the option table. */
function kindSchema(kind: OptionKind): z.ZodType {
  switch (kind.type) {
    case 'switch':
      return z.boolean();
    case 'text':
      return z.string().min(1);
    case 'integer':
      return z.number().int().min(kind.min).max(kind.max);
    case 'size':
      return size;
    case 'duration':
      return duration;
    case 'choice':
      // YAML reads an unquoted 1.2 as a number.
      return z.union([z.enum(kind.values), z.number().transform(String).pipe(z.enum(kind.values))]);
    case 'addresses':
      return z.array(listenText);
    case 'peers':
      return z.array(peerText);
  }
}

const structuredSchema = z.object({
  listeners: z
    .array(z.object({ address: listenText, 'max-role': z.enum(roles), root: z.string().optional() }).strict())
    .min(1),
  quotas: z
    .object({
      repos: z.array(z.object({ repos: z.array(pattern).min(1), 'max-size': size }).strict()),
      users: z.array(z.object({ users: z.array(z.string().min(1)).min(1), 'max-size': size }).strict()),
    })
    .partial()
    .strict(),
  limits: z.array(
    z
      .object({
        users: z.array(z.string().min(1)).min(1),
        'requests-per-second': z.number().positive(),
        burst: z.number().int().positive(),
        'upload-bytes-per-second': size,
        'download-bytes-per-second': size,
      })
      .partial()
      .required({ users: true })
      .strict(),
  ),
  access: z.array(
    z
      .object({
        users: z.array(z.string().min(1)).min(1),
        repos: z.array(pattern).min(1),
        role: z.enum(roles),
      })
      .strict(),
  ),
  freshness: z.array(z.object({ repos: z.array(pattern).min(1), 'stale-after': duration }).strict()),
});

const optionShape: Record<string, z.ZodType> = Object.fromEntries(
  fileOptionNames().map((name) => [fileKey(name) ?? name, kindSchema(options[name].kind)]),
);

const configFileSchema = z
  .object({ ...optionShape, ...structuredSchema.shape })
  .partial()
  .strict();

/** A validated configuration file: the options it sets, and the structured keys. */
export type ConfigFile = Partial<z.infer<typeof structuredSchema>> & {
  /** The options the file sets, by option name. */
  readonly options: OptionLayer;
};

/** Validates parsed YAML; throws a UsageError listing every problem with its key path. */
export function parseConfigFile(text: string, source: string): ConfigFile {
  let data: unknown;
  try {
    data = parseYaml(text) ?? {};
  } catch (err) {
    throw new UsageError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  const result = configFileSchema.safeParse(data);
  if (!result.success) {
    const problems = result.error.issues.map(
      (issue) => `  ${issue.path.join('.') || '(top level)'}: ${issue.message}`,
    );
    throw new UsageError(`${source}: invalid configuration:\n${problems.join('\n')}`);
  }
  const { listeners, quotas, limits, access, freshness } = result.data;
  const parsed: ConfigFile = { options: {}, listeners, quotas, limits, access, freshness };
  const values = new Map<string, unknown>(Object.entries(result.data));
  for (const name of fileOptionNames()) setOption(parsed.options, name, values.get(fileKey(name) ?? name));
  return parsed;
}

function setOption<N extends OptionName>(layer: OptionLayer, name: N, value: unknown): void {
  // The key's schema is kindSchema(options[name].kind), whose output is the option's value type.
  if (value !== undefined) layer[name] = value as OptionValue<N>;
}

/** Reads and validates the configuration file. */
export async function loadConfigFile(file: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    // A wrong --config is a usage mistake (exit 2), like a bad flag.
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new UsageError(`cannot read the configuration file ${file}: ${reason}`);
  }
  return parseConfigFile(text, file);
}
