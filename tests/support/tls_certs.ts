/**
 * A throwaway certificate authority and a server certificate for localhost/127.0.0.1, made with
 * Debian's openssl at test time (nothing secret is committed).
 *
 * @module
 */

/** PEM files of a test CA and a server certificate it signed. */
export interface TestCertificates {
  /** Directory holding the files. */
  dir: string;
  /** The CA certificate (PEM text): the only root a test client should trust. */
  caPem: string;
  /** Path of the server certificate chain (PEM). */
  certFile: string;
  /** Path of the server key (PEM). */
  keyFile: string;
  /** Removes the directory. */
  [Symbol.asyncDispose](): Promise<void>;
}

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
      .output();
  } catch (err) {
    throw new Error(
      `openssl is needed to make test certificates: install the Debian package openssl (${err})`,
    );
  }
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Makes a CA and a server certificate (P-256, valid one day) in a fresh dir under `.artifacts/`. */
export async function makeTestCertificates(): Promise<TestCertificates> {
  const root = new URL("../../.artifacts/", import.meta.url).pathname;
  await Deno.mkdir(root, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: root, prefix: "tls-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await Deno.writeTextFile(
    `${dir}/ca.ext`,
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n" +
      "subjectKeyIdentifier=hash\n",
  );
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
      "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n" +
      "authorityKeyIdentifier=keyid\n",
  );
  await openssl(
    dir,
    "req",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.csr",
    "-subj",
    "/CN=push-server test CA",
  );
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    "ca.csr",
    "-key",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-extfile",
    "ca.ext",
  );
  await openssl(
    dir,
    "req",
    ...ec,
    "-keyout",
    "key.pem",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  );
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "cert.pem",
    "-days",
    "1",
    "-extfile",
    "server.ext",
  );
  return {
    dir,
    caPem: await Deno.readTextFile(`${dir}/ca.pem`),
    certFile: `${dir}/cert.pem`,
    keyFile: `${dir}/key.pem`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}
