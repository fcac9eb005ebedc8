/** Test certificates made by the real `openssl`: a CA, server certificates for 127.0.0.1, client certificates. */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

/** Runs openssl with the arguments; rejects with its stderr when it fails. */
async function openssl(args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run('openssl', args, { cwd });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr}`, { cause: err });
  }
}

const words = (text: string): string[] => text.split(' ');

/** A self-signed CA (P-256) named `<name>.pem` / `<name>.key` in dir. */
export async function makeCa(dir: string, name: string): Promise<CertificateFiles> {
  const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  await openssl(
    [
      ...words('req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2'),
      ...['-keyout', files.key, '-out', files.cert, '-subj', `/CN=${name}`],
      ...['-addext', 'basicConstraints=critical,CA:TRUE'],
      ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ],
    dir,
  );
  return files;
}

/**
 * A certificate signed by the CA: for the server (127.0.0.1 and localhost) or for a client
 * (the common name is the user).
 */
export async function makeLeaf(
  dir: string,
  name: string,
  commonName: string,
  ca: CertificateFiles,
  usage: 'server' | 'client',
): Promise<CertificateFiles> {
  const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  await writeFile(
    ext,
    usage === 'server'
      ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'
      : 'extendedKeyUsage=clientAuth\n',
  );
  await openssl(
    [
      ...words('req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'),
      ...['-keyout', files.key, '-out', csr, '-subj', `/CN=${commonName}`],
    ],
    dir,
  );
  await openssl(
    [
      ...words('x509 -req -CAcreateserial -days 2'),
      ...['-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-out', files.cert, '-extfile', ext],
    ],
    dir,
  );
  return files;
}

/** The SHA-256 fingerprint of a PEM certificate file, in Node's colon notation. */
export async function fingerprintOf(certFile: string): Promise<string> {
  return new X509Certificate(await readFile(certFile)).fingerprint256;
}

/** Replaces target with the content of source the way certbot and editors do: write beside, rename over. */
export async function renameReplace(source: string, target: string): Promise<void> {
  const temp = `${target}.new-${process.pid}`;
  await writeFile(temp, await readFile(source));
  await rename(temp, target);
}
