/* Control API credentials (docs/control-api.md, "TLS and keys"): the CA
 * bundle, the client certificate, its private key and the bearer token,
 * loaded and checked as one set, so a rotation either replaces all of them
 * or none.
 *
 * Secrets (key, token) live in their own mappings marked MADV_DONTDUMP and
 * locked when the limit allows, and are zeroed before they are unmapped. No
 * function here ever puts a secret into an error message. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A buffer for secret bytes: its own page-aligned anonymous mapping, marked
 * MADV_DONTDUMP (and MADV_WIPEONFORK where the kernel has it), mlock()ed
 * when RLIMIT_MEMLOCK allows, explicit_bzero() + munmap() on free. len bytes
 * are used; p[len] is always '\0'. */
struct secbuf {
	unsigned char *p;
	size_t len, map_len;
	bool locked; /* mlock() succeeded: the bytes never reach swap */
};
/* Reads fd to its end (at most max bytes, max < 1 GiB) into a new secbuf
 * that the caller frees with secbuf_free(). Returns 0, -EFBIG when there is
 * more than max, -ENOMEM, or -errno (-EAGAIN from an empty non-blocking
 * pipe). On error *out is untouched and nothing read is left in memory. */
int secbuf_read_fd(int fd, size_t max, struct secbuf *out);
/* Zeroes and unmaps b and resets it to all zero; an all-zero secbuf and a
 * second call are fine. */
void secbuf_free(struct secbuf *b);

struct creds_paths {
	const char *ca_file, *cert_file, *key_file, *token_file;
	uid_t agent_uid; /* besides root, the only owner allowed for key, token and CA */
};

/* A loaded set. Handed to libcurl as blobs, key with CURL_BLOB_NOCOPY: then
 * the set must outlive every easy handle that was given key.p. */
struct creds {
	struct secbuf key;   /* PEM private key, as read */
	struct secbuf token; /* bearer token, surrounding whitespace removed */
	char *cert_pem;      /* client certificate chain, PEM */
	size_t cert_len;
	char *ca_pem;        /* CA bundle, PEM */
	size_t ca_len;
	int64_t not_before, not_after; /* client certificate, seconds since the epoch */
	char subject[256];             /* client certificate subject, one line */
	char fingerprint[65];          /* sha256 of the certificate's DER, hex */
};

/* Loads and checks the whole set; now is the current time. Refuses, with a
 * one-line reason in err that names the file and never its contents:
 *  - key or token file: not a regular file, readable or writable by group or
 *    others, owned by anyone but root or p->agent_uid, empty, too large;
 *  - key: not a PEM private key, encrypted (passphrase), or not the key of
 *    the certificate;
 *  - certificate: not PEM (any block of the chain), expired or not yet
 *    valid at now;
 *  - CA file: a block that is not PEM, or no certificate in it; writable
 *    by group or others, or owned by anyone but root or p->agent_uid
 *    (whoever can change it chooses which server the agent trusts);
 *  - certificate or CA file: not a regular file, larger than 1 MiB, or
 *    holding a private key (those files are public: a key belongs only in
 *    key_file, and only a secbuf may hold key bytes);
 *  - token: empty, or holding characters not allowed in an HTTP header.
 * Every file is opened with O_CLOEXEC|O_NONBLOCK (a FIFO never blocks) and
 * checked with fstat() on the open descriptor; key, token and CA file also
 * with O_NOFOLLOW, so a symbolic link there is refused (a link's target
 * can be swapped by whoever owns the link's directory). The certificate
 * may be a symbolic link (ACME clients use them).
 * err (when errlen > 0) is always NUL-terminated and starts with the file's
 * path. Returns 0 and *out (the caller frees it with creds_free()); on
 * refusal -EPERM (mode, owner), -EINVAL (content, file type), -EFBIG (too
 * large) or -errno from open() (-ELOOP: symbolic link), or -ENOMEM; then
 * *out is untouched. */
int creds_load(const struct creds_paths *p, int64_t now, struct creds **out, char *err,
	       size_t errlen);
/* Whole days until the client certificate expires, rounded down:
 * floor((not_after - now) / 86400), so -1 the second after it expired. */
int creds_days_left(const struct creds *c, int64_t now);
/* Zeroes and frees everything; NULL is fine. */
void creds_free(struct creds *c);
