/**
 * Loading and checking the TLS certificate, key and client CA before they are used, so that a
 * bad pair is refused with a clear message at startup and never replaces a working one on reload.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { SecureContextOptions } from 'node:tls';
import type { TlsConfig } from '../config/server-config.ts';
import { errnoCode, errorMessage } from '../errors.ts';

/** A checked certificate/key pair (and client CA), ready for a secure context. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer | undefined;
  /** SHA-256 fingerprint of the server certificate, as `openssl x509 -fingerprint -sha256` shows it. */
  readonly fingerprint: string;
  readonly subject: string;
  /** End of the server certificate's validity. */
  readonly validTo: Date;
  /** Digest over all files, to tell a real change from a touch. */
  readonly digest: string;
}

// No certificate chain or key is anywhere near this; it bounds what a reload reads.
const maxPemBytes = 1 << 20;

/** Reads and checks the files named by the TLS configuration; throws an Error saying what is wrong. */
export async function loadTlsMaterial(config: TlsConfig): Promise<TlsMaterial> {
  const cert = await readPem(config.cert, 'TLS certificate');
  const key = await readPem(config.key, 'TLS private key');
  const clientCa =
    config.clientCa === undefined ? undefined : await readPem(config.clientCa, 'TLS client CA');

  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`TLS certificate ${config.cert} is not a PEM certificate: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(
      `TLS private key ${config.key} is not an unencrypted PEM private key: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  // A secure context accepts a key that does not belong to the certificate; every handshake
  // would then fail, so the pair is compared here.
  if (!x509.checkPrivateKey(privateKey)) {
    throw new Error(`TLS private key ${config.key} does not belong to the certificate in ${config.cert}`);
  }
  if (clientCa !== undefined) {
    try {
      new X509Certificate(clientCa);
    } catch (err) {
      throw new Error(`TLS client CA ${config.clientCa} is not a PEM certificate: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }
  const material: TlsMaterial = {
    cert,
    key,
    clientCa,
    fingerprint: x509.fingerprint256,
    subject: x509.subject.replace(/\n/g, ', '),
    validTo: new Date(x509.validTo),
    digest: createHash('sha256')
      .update(cert)
      .update('\0')
      .update(key)
      .update('\0')
      .update(clientCa ?? '')
      .digest('hex'),
  };
  // The last word: whatever OpenSSL itself refuses (an unsupported key type, a bad chain entry).
  try {
    createSecureContext(secureContextOptions(config, material));
  } catch (err) {
    throw new Error(
      `TLS certificate ${config.cert} and key ${config.key} are not usable: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  return material;
}

/** The options for tls.createSecureContext / server.setSecureContext with this material. */
export function secureContextOptions(config: TlsConfig, material: TlsMaterial): SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    // Only client certificates are checked against `ca`; the server's own chain is in `cert`.
    ...(material.clientCa === undefined ? {} : { ca: material.clientCa }),
    minVersion: config.minVersion,
  };
}

async function readPem(file: string, what: string): Promise<Buffer> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new Error(`${what} ${file} is not a regular file`);
    if (info.size > maxPemBytes) throw new Error(`${what} ${file} is larger than ${maxPemBytes} bytes`);
    return await readFile(file);
  } catch (err) {
    const code = errnoCode(err);
    if (code === undefined) throw err;
    const reason = code === 'ENOENT' ? 'does not exist' : `cannot be read: ${errorMessage(err)}`;
    throw new Error(`${what} ${file} ${reason}`, { cause: err });
  }
}
