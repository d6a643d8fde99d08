/* Control API credentials (see creds.h): file checks, then OpenSSL checks of
 * what the files hold. Key and token bytes only ever live in a secbuf; the
 * OpenSSL objects parsed from the key are freed as soon as it is checked. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "creds.h"

#define KEY_MAX_BYTES (64u << 10)
#define TOKEN_MAX_BYTES (8u << 10)
#define PUBLIC_MAX_BYTES (1u << 20)
#define SECBUF_MAX_BYTES (1u << 30)

/* -errno, and visibly negative: callers test r < 0, and the analyzer only
 * believes it when the test is on the value itself (a macro: it does not
 * follow calls this deep). */
#define NEG_ERRNO()                                                            \
	({                                                                     \
		int _neg = -errno;                                             \
		_neg < 0 ? _neg : -EIO;                                        \
	})

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	return (n + pg - 1) / pg * pg;
}

/* A zeroed mapping with room for cap bytes and the NUL. */
static int secbuf_alloc(size_t cap, struct secbuf *b)
{
	size_t map_len = page_round(cap + 1);
	void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	/* The header promises no key in a core dump: without DONTDUMP, fail. */
	if (madvise(p, map_len, MADV_DONTDUMP) < 0) {
		int r = NEG_ERRNO();
		munmap(p, map_len);
		return r;
	}
	/* A forked child sees zeroes; kernels before 4.14 lack it, which is fine. */
	(void)madvise(p, map_len, MADV_WIPEONFORK);
	/* Best effort: RLIMIT_MEMLOCK may be small for an unprivileged agent user,
	 * and refusing to run for want of it would trade availability for swap
	 * hygiene. The caller can tell from b->locked. */
	bool locked = mlock(p, map_len) == 0;
	*b = (struct secbuf){ .p = p, .map_len = map_len, .locked = locked };
	return 0;
}

void secbuf_free(struct secbuf *b)
{
	if (!b->p)
		return;
	explicit_bzero(b->p, b->map_len);
	if (b->locked)
		munlock(b->p, b->map_len);
	munmap(b->p, b->map_len);
	*b = (struct secbuf){ 0 };
}

/* Moves b into a larger mapping; the old one is zeroed on the way out. */
static int secbuf_grow(struct secbuf *b, size_t cap)
{
	struct secbuf n;
	int r = secbuf_alloc(cap, &n);
	if (r < 0)
		return r;
	memcpy(n.p, b->p, b->len);
	n.len = b->len;
	secbuf_free(b);
	*b = n;
	return 0;
}

/* Reads to EOF; one byte more than max is enough to know it is too large. */
static int secbuf_fill(int fd, size_t max, struct secbuf *b)
{
	for (;;) {
		size_t room = b->map_len - 1 - b->len;
		if (room == 0) {
			size_t cap = 2 * b->map_len < max + 1 ? 2 * b->map_len : max + 1;
			int r = secbuf_grow(b, cap);
			if (r < 0)
				return r;
			continue;
		}
		ssize_t n = read(fd, b->p + b->len, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NEG_ERRNO();
		if (n == 0)
			return 0;
		b->len += (size_t)n;
		if (b->len > max)
			return -EFBIG;
	}
}

int secbuf_read_fd(int fd, size_t max, struct secbuf *out)
{
	if (max >= SECBUF_MAX_BYTES)
		return -EINVAL;
	/* A regular file's size sizes the mapping; a pipe starts with a page. */
	struct stat st;
	size_t hint = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		if ((uint64_t)st.st_size > max)
			return -EFBIG;
		hint = (size_t)st.st_size;
	}
	struct secbuf b;
	int r = secbuf_alloc(hint, &b);
	if (r < 0)
		return r;
	r = secbuf_fill(fd, max, &b);
	if (r < 0) {
		secbuf_free(&b);
		return r;
	}
	b.p[b.len] = '\0';
	*out = b;
	return 0;
}

__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t len, const char *fmt,
							 ...)
{
	if (len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
}

/* Writes the message and yields r; a macro, so that the analyzer (which does
 * not follow variadic calls) sees which value is returned. */
#define fail(err, len, r, ...) (errf((err), (len), __VA_ARGS__), (r))

/* OpenSSL's error queue is per thread and libcurl reads it later: leave it
 * empty after a check that failed on purpose. */
static int ssl_fail(char *err, size_t len, int r, const char *path, const char *why)
{
	ERR_clear_error();
	return fail(err, len, r, "%s: %s", path, why);
}

static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

/* The policy for key and token: who may read them is the file's business,
 * so the file itself must be as private as the secret. */
static int check_secret_stat(const char *path, const struct stat *st, uid_t agent_uid, char *err,
			     size_t len)
{
	mode_t m = st->st_mode & 07777;
	if (m & 077)
		return fail(err, len, -EPERM,
			    "%s: mode %04o lets group or others %s it; chmod 0600", path,
			    (unsigned)m, (m & 044) ? "read" : (m & 022) ? "write" : "execute");
	if (st->st_uid != 0 && st->st_uid != agent_uid)
		return fail(err, len, -EPERM,
			    "%s: owned by uid %u; must be owned by root or the agent's user "
			    "(uid %u)", path, (unsigned)st->st_uid, (unsigned)agent_uid);
	return 0;
}

/* The policy for the CA file: anyone may read it, but whoever can change
 * it can make the agent trust a control plane of their choosing, so it is
 * held to the key's owner rule, and only group and others' write bits are
 * refused. */
static int check_trusted_stat(const char *path, const struct stat *st, uid_t agent_uid,
			      char *err, size_t len)
{
	mode_t m = st->st_mode & 07777;
	if (m & 022)
		return fail(err, len, -EPERM,
			    "%s: mode %04o lets %s write it, and whoever writes it chooses which "
			    "control plane the agent trusts; chmod go-w", path, (unsigned)m,
			    (m & 020) ? "its group" : "others");
	if (st->st_uid != 0 && st->st_uid != agent_uid)
		return fail(err, len, -EPERM,
			    "%s: owned by uid %u; must be owned by root or the agent's user "
			    "(uid %u)", path, (unsigned)st->st_uid, (unsigned)agent_uid);
	return 0;
}

/* How much a file is trusted: public (the certificate: any owner, any
 * mode, links followed), trusted (the CA: integrity checked, no link),
 * secret (key and token: private to root or the agent, no link). */
enum file_trust { FILE_PUBLIC, FILE_TRUSTED, FILE_SECRET };

/* Opens path and checks the open file, so what is checked is what is read.
 * Returns the descriptor and *st, or -errno with err set. */
static int open_checked(const char *path, enum file_trust trust, uid_t agent_uid,
			struct stat *st, char *err, size_t len)
{
	bool nofollow = trust != FILE_PUBLIC;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0 && errno == ELOOP && nofollow)
		return fail(err, len, -ELOOP, "%s: is a symbolic link; name the file itself", path);
	if (fd < 0) {
		int r = NEG_ERRNO();
		return fail(err, len, r, "%s: cannot open: %s", path, strerror(-r));
	}
	int r = 0;
	if (fstat(fd, st) < 0)
		r = fail(err, len, NEG_ERRNO(), "%s: cannot stat: %s", path, strerror(errno));
	else if (!S_ISREG(st->st_mode))
		r = fail(err, len, -EINVAL, "%s: is %s, not a regular file", path,
			 file_kind(st->st_mode));
	else if (trust == FILE_SECRET)
		r = check_secret_stat(path, st, agent_uid, err, len);
	else if (trust == FILE_TRUSTED)
		r = check_trusted_stat(path, st, agent_uid, err, len);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static int read_secret(const char *path, size_t max, uid_t agent_uid, struct secbuf *out,
		       char *err, size_t len)
{
	struct stat st;
	int fd = open_checked(path, FILE_SECRET, agent_uid, &st, err, len);
	if (fd < 0)
		return fd;
	int r = secbuf_read_fd(fd, max, out);
	close(fd);
	if (r == -EFBIG)
		return fail(err, len, r, "%s: larger than %zu bytes", path, max);
	if (r < 0)
		return fail(err, len, r, "%s: cannot read: %s", path, strerror(-r));
	if (out->len == 0) {
		secbuf_free(out);
		return fail(err, len, -EINVAL, "%s: is empty", path);
	}
	return 0;
}

/* Certificate and CA files are readable by anyone, so a private key in one
 * would be key bytes outside a secbuf, readable by anyone. */
static int read_public(const char *path, enum file_trust trust, uid_t agent_uid, char **out,
		       size_t *out_len, char *err, size_t len)
{
	struct stat st;
	int fd = open_checked(path, trust, agent_uid, &st, err, len);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size > PUBLIC_MAX_BYTES) {
		close(fd);
		return fail(err, len, -EFBIG, "%s: larger than %u bytes", path, PUBLIC_MAX_BYTES);
	}
	size_t size = (size_t)st.st_size, got = 0;
	char *b = malloc(size + 1);
	while (b && got < size) {
		ssize_t n = read(fd, b + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!b)
		return fail(err, len, -ENOMEM, "%s: out of memory", path);
	b[got] = '\0';
	if (got != size) {
		free(b);
		return fail(err, len, -EIO, "%s: short read", path);
	}
	if (memmem(b, got, "PRIVATE KEY-----", 16)) {
		explicit_bzero(b, got);
		free(b);
		return fail(err, len, -EINVAL,
			    "%s: holds a private key; this file is public, keep the key only in "
			    "key_file (mode 0600)", path);
	}
	*out = b;
	*out_len = got;
	return 0;
}

/* Never prompt: an encrypted key is refused, and the caller is told why. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	*(bool *)u = true;
	return -1;
}

static int asn1_epoch(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static const char *fmt_utc(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "%lld (epoch)", (long long)t);
	return buf;
}

static int cert_validity(struct creds *c, X509 *x, const char *path, int64_t now, char *err,
			 size_t len)
{
	char when[64];
	if (asn1_epoch(X509_get0_notBefore(x), &c->not_before) < 0 ||
	    asn1_epoch(X509_get0_notAfter(x), &c->not_after) < 0)
		return ssl_fail(err, len, -EINVAL, path,
				"the certificate's validity dates are unreadable");
	/* RFC 5280 4.1.2.5: both ends of the validity period are inclusive. */
	if (now < c->not_before)
		return fail(err, len, -EINVAL, "%s: the certificate is not valid before %s", path,
			    fmt_utc(c->not_before, when, sizeof(when)));
	if (now > c->not_after)
		return fail(err, len, -EINVAL, "%s: the certificate expired on %s", path,
			    fmt_utc(c->not_after, when, sizeof(when)));
	return 0;
}

static int cert_identity(struct creds *c, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!X509_digest(x, EVP_sha256(), md, &n) || n * 2 >= sizeof(c->fingerprint))
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		snprintf(c->fingerprint + 2 * i, 3, "%02x", md[i]);
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return -ENOMEM;
	/* ONELINE escapes control and non-ASCII bytes, so this is safe to log. */
	X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_ONELINE);
	int got = BIO_read(b, c->subject, (int)sizeof(c->subject) - 1);
	c->subject[got > 0 ? got : 0] = '\0';
	BIO_free(b);
	return 0;
}

/* The rest of the chain must parse too: libcurl reads every block, and a
 * broken one should fail here, with the file named, not at the first
 * connection. */
static int cert_chain_rest(BIO *bio, const char *path, char *err, size_t len)
{
	X509 *x;
	int n = 1;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509_free(x);
		n++;
	}
	unsigned long e = ERR_peek_last_error();
	ERR_clear_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		return 0;
	return fail(err, len, -EINVAL,
		    "%s: block %d of the certificate chain is not a PEM certificate", path, n + 1);
}

/* Parses the leaf certificate of the chain, checks it, fills c; *leaf is
 * kept for the key check. */
static int load_cert(struct creds *c, const char *path, int64_t now, X509 **leaf, char *err,
		     size_t len)
{
	int r = read_public(path, FILE_PUBLIC, 0, &c->cert_pem, &c->cert_len, err, len);
	if (r < 0)
		return r;
	BIO *bio = BIO_new_mem_buf(c->cert_pem, (int)c->cert_len);
	if (!bio)
		return fail(err, len, -ENOMEM, "%s: out of memory", path);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!x) {
		BIO_free(bio);
		return ssl_fail(err, len, -EINVAL, path, "not a PEM certificate");
	}
	r = cert_chain_rest(bio, path, err, len);
	BIO_free(bio);
	if (r == 0)
		r = cert_validity(c, x, path, now, err, len);
	if (r == 0 && cert_identity(c, x) < 0)
		r = ssl_fail(err, len, -ENOMEM, path, "out of memory");
	if (r < 0) {
		X509_free(x);
		return r;
	}
	*leaf = x;
	return 0;
}

static int check_key(const struct secbuf *key, X509 *leaf, const char *path,
		     const char *cert_path, char *err, size_t len)
{
	BIO *bio = BIO_new_mem_buf(key->p, (int)key->len);
	if (!bio)
		return fail(err, len, -ENOMEM, "%s: out of memory", path);
	bool encrypted = false;
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted);
	BIO_free(bio);
	int r = 0;
	if (!pk && encrypted)
		r = ssl_fail(err, len, -EINVAL, path,
			     "the private key is encrypted; cloudviz-agent needs an unencrypted "
			     "key readable only by root or its user");
	else if (!pk)
		r = ssl_fail(err, len, -EINVAL, path, "not a PEM private key");
	else if (X509_check_private_key(leaf, pk) != 1)
		r = fail(err, len, -EINVAL,
			 "%s: the private key does not belong to the certificate in %s", path,
			 cert_path);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return r;
}

/* RFC 9110 field values allow more, but a bearer token (RFC 6750 b64token)
 * is visible ASCII, and anything else is a mistake in the file. */
static bool token_byte_ok(unsigned char ch)
{
	return ch >= 0x21 && ch <= 0x7e;
}

static bool is_space(unsigned char ch)
{
	return ch == ' ' || (ch >= '\t' && ch <= '\r');
}

/* Trims surrounding whitespace in place and zeroes what was dropped.
 * Returns how many leading bytes went, for error positions. */
static size_t secbuf_trim(struct secbuf *b)
{
	size_t lead = 0, end = b->len;
	while (lead < end && is_space(b->p[lead]))
		lead++;
	while (end > lead && is_space(b->p[end - 1]))
		end--;
	size_t n = end - lead;
	memmove(b->p, b->p + lead, n);
	explicit_bzero(b->p + n, b->len - n);
	b->len = n;
	return lead;
}

static int load_token(struct creds *c, const char *path, uid_t agent_uid, char *err, size_t len)
{
	int r = read_secret(path, TOKEN_MAX_BYTES, agent_uid, &c->token, err, len);
	if (r < 0)
		return r;
	size_t lead = secbuf_trim(&c->token);
	if (c->token.len == 0)
		return fail(err, len, -EINVAL, "%s: holds only whitespace, no token", path);
	/* The position, never the byte: the error must say nothing of the token. */
	for (size_t i = 0; i < c->token.len; i++)
		if (!token_byte_ok(c->token.p[i]))
			return fail(err, len, -EINVAL,
				    "%s: the token holds a character not allowed in an HTTP header "
				    "(byte %zu of the file)", path, lead + i + 1);
	return 0;
}

static int load_ca(struct creds *c, const char *path, uid_t agent_uid, char *err, size_t len)
{
	int r = read_public(path, FILE_TRUSTED, agent_uid, &c->ca_pem, &c->ca_len, err, len);
	if (r < 0)
		return r;
	BIO *bio = BIO_new_mem_buf(c->ca_pem, (int)c->ca_len);
	if (!bio)
		return fail(err, len, -ENOMEM, "%s: out of memory", path);
	bool encrypted = false;
	STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(bio, NULL, no_passphrase, &encrypted);
	BIO_free(bio);
	if (!infos)
		return ssl_fail(err, len, -EINVAL, path,
				"a block is not a readable PEM certificate");
	int certs = 0;
	for (int i = 0; i < sk_X509_INFO_num(infos); i++)
		certs += sk_X509_INFO_value(infos, i)->x509 != NULL;
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (certs == 0)
		return ssl_fail(err, len, -EINVAL, path, "holds no PEM certificate");
	ERR_clear_error();
	return 0;
}

/* The order puts the owner's most likely mistakes (file modes) first and
 * needs the certificate before the key can be matched against it. */
static int load_all(struct creds *c, const struct creds_paths *p, int64_t now, char *err,
		    size_t len)
{
	X509 *leaf = NULL;
	int r = read_secret(p->key_file, KEY_MAX_BYTES, p->agent_uid, &c->key, err, len);
	if (r == 0)
		r = load_token(c, p->token_file, p->agent_uid, err, len);
	if (r == 0)
		r = load_cert(c, p->cert_file, now, &leaf, err, len);
	if (r == 0)
		r = check_key(&c->key, leaf, p->key_file, p->cert_file, err, len);
	if (r == 0)
		r = load_ca(c, p->ca_file, p->agent_uid, err, len);
	X509_free(leaf);
	return r;
}

int creds_load(const struct creds_paths *p, int64_t now, struct creds **out, char *err,
	       size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	struct creds *c = calloc(1, sizeof(*c));
	if (!c)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", p->key_file);
	int r = load_all(c, p, now, err, errlen);
	if (r < 0) {
		creds_free(c);
		return r;
	}
	*out = c;
	return 0;
}

int creds_days_left(const struct creds *c, int64_t now)
{
	int64_t d = c->not_after - now;
	int64_t days = d / 86400 - (d % 86400 < 0);
	if (days > INT32_MAX)
		return INT32_MAX;
	if (days < INT32_MIN)
		return INT32_MIN;
	return (int)days;
}

void creds_free(struct creds *c)
{
	if (!c)
		return;
	secbuf_free(&c->key);
	secbuf_free(&c->token);
	/* Public, but zeroed anyway: the header promises everything. */
	if (c->cert_pem)
		explicit_bzero(c->cert_pem, c->cert_len);
	if (c->ca_pem)
		explicit_bzero(c->ca_pem, c->ca_len);
	free(c->cert_pem);
	free(c->ca_pem);
	explicit_bzero(c, sizeof(*c));
	free(c);
}
