// A TLS certificate and key from files: read, checked as a pair, described for logs. Config
// loading uses it to name a bad file at its place in relay.yaml; the server to reload a renewal.

import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';

export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface Certificate {
  cert: Buffer;
  key: Buffer;
  /** "CN=relay.example.com, valid until 2027-02-01T00:00:00.000Z" */
  about: string;
}

/** What is wrong with a pair, and which of the two files it is about. */
export class CertificateError extends Error {
  constructor(
    message: string,
    readonly field: 'cert' | 'key',
  ) {
    super(message);
    this.name = 'CertificateError';
  }
}

/** Both files, read and checked: throws what is wrong (never the key's contents). */
export function readCertificate(files: CertificateFiles): Certificate {
  const read = (field: 'cert' | 'key', what: string): Buffer => {
    try {
      return readFileSync(files[field]);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new CertificateError(`cannot read the ${what} ${files[field]}: ${code}`, field);
    }
  };
  const cert = read('cert', 'certificate');
  const key = read('key', 'key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new CertificateError(`${files.cert} is not a PEM certificate`, 'cert');
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    const e = err as { code?: string; message: string };
    throw new CertificateError(
      e.code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH' || /mismatch/i.test(e.message)
        ? `${files.key} is not the key of ${files.cert}`
        : `${files.key} is not a usable PEM private key (${e.code ?? 'unreadable'})`,
      'key',
    );
  }
  const cn = leaf.subject.split('\n').find((l) => l.startsWith('CN=')) ?? leaf.subject;
  return { cert, key, about: `${cn}, valid until ${new Date(leaf.validTo).toISOString()}` };
}

/** What is wrong with the pair, and which field of server.tls to name; undefined: usable. */
export function certificateProblem(files: CertificateFiles): CertificateError | undefined {
  try {
    readCertificate(files);
    return undefined;
  } catch (err) {
    if (err instanceof CertificateError) return err;
    throw err;
  }
}
