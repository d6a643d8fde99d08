"""Test PKI for the control API tests, made with the openssl(1) command line.

Python 3 standard library and `openssl` only. EC P-256 keys: a whole set
takes about a second (some 40 openssl runs).

    import pki
    paths = pki.make(dir, server_ips=["10.9.0.1", "fd09::1"], node_id="t1")
    paths["ca"], paths["server"], paths["server_key"], paths["token"], ...

make() returns a dict of absolute paths. For every certificate NAME below,
paths[NAME] is NAME.pem and paths[NAME + "_key"] is NAME.key:

| NAME             | signed by | subject / SAN                              | valid           |
|------------------|-----------|--------------------------------------------|-----------------|
| ca               | itself    | CN=cloudviz test CA                        | -1 d .. +10 y   |
| server           | ca        | IP:<each server ip>, DNS:cvz-control.test  | -1 h .. +1 y    |
| server_expired   | ca        | same SAN as server                         | -60 d .. -1 d   |
| server_wrongname | ca        | DNS:other.example only (no IP)             | -1 h .. +1 y    |
| server_otherca   | other_ca  | same SAN as server                         | -1 h .. +1 y    |
| client           | ca        | CN=<node_id>                               | -1 h .. +1 y    |
| client2          | ca        | CN=<node_id> (another key, for rotation)   | -1 h .. +1 y    |
| client_expiring  | ca        | CN=<node_id>                               | -1 h .. +10 d   |
| client_expired   | ca        | CN=<node_id>                               | -60 d .. -1 d   |
| client_otherca   | other_ca  | CN=<node_id>                               | -1 h .. +1 y    |
| other_ca         | itself    | CN=cloudviz other CA                       | -1 d .. +10 y   |

Server certificates carry extendedKeyUsage serverAuth, client certificates
clientAuth; all leaves have keyUsage digitalSignature, subject and authority
key identifiers, as RFC 5280 asks (curl and Python verify them strictly).

Also paths["token"] and paths["token2"]: bearer tokens (one line each, 43
URL-safe characters), and paths["dir"]. Every key and token file is mode
0600 owned by root:root (when run as root); certificates are 0644.

Validity periods are real: the expired certificates are signed with
`openssl ca -startdate/-enddate` in the past, so no fake clock is needed.

make() is idempotent per directory: a second call with the same arguments
returns the same files untouched; different server_ips or node_id make a new
set (a new CA too). load() returns the paths of an existing set as it is.
make_cert() signs one more certificate on demand (other SANs, other
dates). Calls are serialised per directory with flock.
"""

import base64
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import secrets
import subprocess

SERVER_DNS = "cvz-control.test"
WRONG_DNS = "other.example"
CA_NAMES = ("ca", "other_ca")
LEAVES = ("server", "server_expired", "server_wrongname", "server_otherca",
          "client", "client2", "client_expiring", "client_expired", "client_otherca")
MANIFEST = "pki.json"

_CA_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
database = {db}/index.txt
new_certs_dir = {db}
default_md = sha256
policy = policy_cn
unique_subject = no
copy_extensions = none
rand_serial = yes
[ policy_cn ]
commonName = supplied
organizationName = optional
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_LEAF_EXT = """\
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = {eku}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
{san}"""


def _openssl(*args, cwd=None):
    p = subprocess.run(["openssl"] + [str(a) for a in args], capture_output=True, text=True,
                       cwd=cwd, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed (%d):\n%s%s" % (args[0], p.returncode, p.stdout,
                                                               p.stderr))
    return p.stdout


def _asn1_time(t):
    """A datetime (UTC) as `openssl ca -startdate` wants it."""
    return t.strftime("%Y%m%d%H%M%SZ")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _secret_file(path, data):
    """Writes data to path as a 0600 root:root file, never readable by others
    even for a moment (O_EXCL on a fresh name, then rename)."""
    tmp = path + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
        os.fchmod(fd, 0o600)
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _new_key(path):
    pem = _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    _secret_file(path, pem)


def _ca_db(dir, ca):
    """The `openssl ca` database and config of CA ca ("ca" or "other_ca")."""
    db = os.path.join(dir, ".%s-db" % ca)
    os.makedirs(db, exist_ok=True)
    index = os.path.join(db, "index.txt")
    if not os.path.exists(index):
        open(index, "w").close()
    cnf = os.path.join(db, "ca.cnf")
    with open(cnf, "w") as f:
        f.write(_CA_CNF.format(db=db))
    return cnf


def _make_ca(dir, ca, cn):
    cnf = _ca_db(dir, ca)
    key = os.path.join(dir, ca + ".key")
    pem = os.path.join(dir, ca + ".pem")
    csr = os.path.join(dir, ".%s-db" % ca, "ca.csr")
    _new_key(key)
    _openssl("req", "-new", "-key", key, "-subj", "/O=CloudViz test/CN=" + cn, "-out", csr)
    now = _now()
    _openssl("ca", "-batch", "-config", cnf, "-selfsign", "-keyfile", key, "-in", csr,
             "-out", pem, "-notext", "-extensions", "v3_ca",
             "-startdate", _asn1_time(now - datetime.timedelta(days=1)),
             "-enddate", _asn1_time(now + datetime.timedelta(days=3650)))
    os.chmod(pem, 0o644)


def _subject_alt_names(dns=(), ips=()):
    names = ["DNS:" + d for d in dns] + ["IP:" + i for i in ips]
    return "subjectAltName = " + ",".join(names) + "\n" if names else ""


def make_cert(dir, name, cn, dns=(), ips=(), client=False, ca="ca",
              not_before=None, not_after=None, days=365):
    """Signs a new certificate NAME.pem with a new key NAME.key in dir (an
    existing pair of that name is replaced) by CA ca ("ca" or "other_ca",
    which must exist: call make() first).

    cn: the subject's common name; dns, ips: subjectAltName entries (none:
    no SAN extension). client=True: extendedKeyUsage clientAuth, otherwise
    serverAuth. not_before / not_after: datetimes (UTC); by default one hour
    ago and `days` days from now. Past dates make a genuinely expired
    certificate.

    Returns (cert path, key path)."""
    dir = os.path.abspath(dir)
    with _locked(dir):
        return _make_cert(dir, name, cn, dns, ips, client, ca, not_before, not_after, days)


def _make_cert(dir, name, cn, dns, ips, client, ca, not_before, not_after, days):
    now = _now()
    not_before = not_before or now - datetime.timedelta(hours=1)
    not_after = not_after or now + datetime.timedelta(days=days)
    cnf = _ca_db(dir, ca)
    db = os.path.dirname(cnf)
    key = os.path.join(dir, name + ".key")
    pem = os.path.join(dir, name + ".pem")
    csr = os.path.join(db, name + ".csr")
    ext = os.path.join(db, name + ".ext")
    with open(ext, "w") as f:
        f.write(_LEAF_EXT.format(eku="clientAuth" if client else "serverAuth",
                                 san=_subject_alt_names(dns, ips)))
    _new_key(key)
    _openssl("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr)
    _openssl("ca", "-batch", "-config", cnf, "-keyfile", os.path.join(dir, ca + ".key"),
             "-cert", os.path.join(dir, ca + ".pem"), "-in", csr, "-out", pem, "-notext",
             "-extfile", ext, "-extensions", "leaf",
             "-startdate", _asn1_time(not_before), "-enddate", _asn1_time(not_after))
    os.chmod(pem, 0o644)
    return pem, key


@contextlib.contextmanager
def _locked(dir):
    os.makedirs(dir, exist_ok=True)
    with open(os.path.join(dir, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _paths(dir):
    p = {"dir": dir, "token": os.path.join(dir, "token"), "token2": os.path.join(dir, "token2")}
    for name in CA_NAMES + LEAVES:
        p[name] = os.path.join(dir, name + ".pem")
        p[name + "_key"] = os.path.join(dir, name + ".key")
    return p


def load(dir):
    """The paths of a complete PKI that make() created in dir earlier, or
    None (nothing regenerated, whatever its server_ips were)."""
    paths = _paths(os.path.abspath(dir))
    if os.path.exists(os.path.join(paths["dir"], MANIFEST)) and \
            all(os.path.exists(v) for v in paths.values()):
        return paths
    return None


def make(dir, server_ips=(), node_id="t1"):
    """Creates (or reuses) the whole test PKI in dir; returns the dict of
    paths described in the module docstring. server_ips: the addresses the
    control plane listens on, put into the server certificates' SAN."""
    dir = os.path.abspath(dir)
    want = {"server_ips": list(server_ips), "node_id": node_id}
    paths = _paths(dir)
    with _locked(dir):
        manifest = os.path.join(dir, MANIFEST)
        try:
            with open(manifest) as f:
                have = json.load(f)
        except (OSError, ValueError):
            have = None
        if have == want and all(os.path.exists(v) for k, v in paths.items() if k != "dir"):
            return paths
        with contextlib.suppress(FileNotFoundError):
            os.unlink(manifest)
        _make_all(dir, list(server_ips), node_id)
        with open(manifest, "w") as f:
            json.dump(want, f)
    return paths


def _make_all(dir, ips, node_id):
    _make_ca(dir, "ca", "cloudviz test CA")
    _make_ca(dir, "other_ca", "cloudviz other CA")
    now = _now()
    past = dict(not_before=now - datetime.timedelta(days=60),
                not_after=now - datetime.timedelta(days=1))
    dns = (SERVER_DNS,)
    _make_cert(dir, "server", "cvz-control", dns, ips, False, "ca", None, None, 365)
    _make_cert(dir, "server_expired", "cvz-control", dns, ips, False, "ca",
               past["not_before"], past["not_after"], 0)
    _make_cert(dir, "server_wrongname", "other.example", (WRONG_DNS,), (), False, "ca",
               None, None, 365)
    _make_cert(dir, "server_otherca", "cvz-control", dns, ips, False, "other_ca",
               None, None, 365)
    for name, ca, days in (("client", "ca", 365), ("client2", "ca", 365),
                           ("client_expiring", "ca", 10), ("client_otherca", "other_ca", 365)):
        _make_cert(dir, name, node_id, (), (), True, ca, None, None, days)
    _make_cert(dir, "client_expired", node_id, (), (), True, "ca",
               past["not_before"], past["not_after"], 0)
    for name in ("token", "token2"):
        _secret_file(os.path.join(dir, name), new_token() + "\n")


def new_token():
    """A fresh random bearer token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def read_token(path):
    """The token in a token file, surrounding whitespace removed."""
    with open(path) as f:
        return f.read().strip()


def pubkey_pin(cert):
    """The "sha256//BASE64" pin of cert's public key (SHA-256 of the DER
    SubjectPublicKeyInfo), as curl's CURLOPT_PINNEDPUBLICKEY and the agent's
    control_api.pinned_pubkey take it."""
    pub = _openssl("x509", "-in", cert, "-noout", "-pubkey")
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.encode(),
                         capture_output=True, check=True, timeout=60).stdout
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def dates(cert):
    """(notBefore, notAfter) of cert as aware UTC datetimes."""
    out = _openssl("x509", "-in", cert, "-noout", "-startdate", "-enddate", "-dateopt", "iso_8601")
    got = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def parse(s):
        return datetime.datetime.strptime(s.strip(), "%Y-%m-%d %H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    return parse(got["notBefore"]), parse(got["notAfter"])


def verify(cert, ca):
    """`openssl verify -CAfile ca cert`: (ok, output)."""
    p = subprocess.run(["openssl", "verify", "-CAfile", ca, cert], capture_output=True, text=True,
                       timeout=60)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="make the control API test PKI in DIR")
    ap.add_argument("dir")
    ap.add_argument("--server-ip", action="append", default=[])
    ap.add_argument("--node-id", default="t1")
    args = ap.parse_args()
    for k, v in sorted(make(args.dir, args.server_ip, args.node_id).items()):
        print("%-22s %s" % (k, v))
