/**
 * The YAML configuration file: the flags' settings under their flag names, plus what flags
 * cannot say well — listeners with their role ceilings, and access grants.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { compilePattern } from '../access/grants.ts';
import { roles } from '../access/policy.ts';
import { parseListenAddress } from './listen-address.ts';
import { parseSize } from './sizes.ts';

const listenText = z.string().refine(
  (text) => {
    try {
      parseListenAddress(text);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected host:port, :port, [ipv6]:port or unix:/path' },
);

const pattern = z.string().refine(
  (text) => {
    try {
      compilePattern(text);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected a repository pattern such as /{user}/** or /servers/*/' },
);

const size = z.union([z.number(), z.string()]).transform((value, ctx) => {
  try {
    return parseSize(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const configFileSchema = z
  .object({
    path: z.string().min(1),
    listen: z.array(listenText).min(1),
    'admin-listen': z.array(listenText),
    tls: z.boolean(),
    'tls-cert': z.string().min(1),
    'tls-key': z.string().min(1),
    // YAML reads an unquoted 1.2 as a number.
    'tls-min-ver': z.union([z.enum(['1.2', '1.3']), z.literal(1.2), z.literal(1.3)]).transform(String),
    'tls-client-ca': z.string().min(1),
    listeners: z.array(z.object({ address: listenText, 'max-role': z.enum(roles) }).strict()).min(1),
    'append-only': z.boolean(),
    'private-repos': z.boolean(),
    'htpasswd-file': z.string().min(1),
    'no-auth': z.boolean(),
    'proxy-auth-username': z.string().min(1),
    'no-verify-upload': z.boolean(),
    'sync-fs-reads': z.enum(['auto', 'on', 'off']),
    log: z.string().min(1),
    debug: z.boolean(),
    'group-accessible-repos': z.boolean(),
    'max-repo-depth': z.number().int().min(1).max(64),
    'shutdown-timeout': z.number().int().min(1).max(3600),
    'max-size': size,
    prometheus: z.boolean(),
    'prometheus-no-auth': z.boolean(),
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
  })
  .partial()
  .strict();

export type ConfigFile = z.infer<typeof configFileSchema>;

/** Validates parsed YAML; throws an Error listing every problem with its key path. */
export function parseConfigFile(text: string, source: string): ConfigFile {
  let data: unknown;
  try {
    data = parseYaml(text) ?? {};
  } catch (err) {
    throw new Error(`${source}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  const result = configFileSchema.safeParse(data);
  if (!result.success) {
    const problems = result.error.issues.map(
      (issue) => `  ${issue.path.join('.') || '(top level)'}: ${issue.message}`,
    );
    throw new Error(`${source}: invalid configuration:\n${problems.join('\n')}`);
  }
  return result.data;
}

/** Reads and validates the configuration file. */
export async function loadConfigFile(file: string): Promise<ConfigFile> {
  return parseConfigFile(await readFile(file, 'utf8'), file);
}
