/* Control API credentials: a good set loads; every file check, key check,
 * certificate date and CA check refuses with the file named and no secret
 * in the message; secbuf reads exactly and is kept out of core dumps. Keys
 * and certificates are made here with OpenSSL, in a fresh directory per
 * test. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "creds.h"

/* 2026-01-01 00:00:00 UTC; the client certificate is valid for 90 days. */
#define T0 INT64_C(1767225600)
#define DAY 86400
#define T_END (T0 + 90 * DAY)
#define NOW (T0 + 10 * DAY)

/* Distinctive, so that any error message quoting the token is caught. */
#define TOKEN_MARK "Zq7xTOKENx9"
#define TOKEN "cvz-" TOKEN_MARK "-0123456789abcdef"
#define OTHER_UID 12345u

static struct {
	EVP_PKEY *ca_key, *key, *other_key;
	X509 *ca, *leaf;
	char *ca_pem, *leaf_pem, *key_pem, *key_trad_pem, *other_key_pem;
	char *enc_pkcs8_pem, *enc_trad_pem;
	char key_line[24]; /* a piece of the key's base64, never to be seen in an error */
	char fingerprint[65];
} K;

struct fx {
	char dir[64];
	char ca[128], cert[128], key[128], token[128];
	struct creds_paths p;
};

static char *bio_string(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	assert_true(n > 0);
	/* not strndup: the BIO's bytes have no NUL, and ASan's
	   strict_string_checks reads strndup's source as a C string */
	char *s = malloc((size_t)n + 1);
	assert_non_null(s);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	BIO_free(b);
	return s;
}

static char *cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	return bio_string(b);
}

static char *key_pem(EVP_PKEY *k, const EVP_CIPHER *enc, bool traditional)
{
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char pw[] = "secret-passphrase";
	int pwlen = enc ? (int)strlen((char *)pw) : 0;
	if (traditional)
		assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, k, enc, enc ? pw : NULL,
								      pwlen, NULL, NULL), 1);
	else
		assert_int_equal(PEM_write_bio_PrivateKey(b, k, enc, enc ? pw : NULL, pwlen, NULL,
							  NULL), 1);
	return bio_string(b);
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       int64_t not_before, int64_t not_after)
{
	static long serial = 1;
	X509 *x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"CloudViz", -1, -1,
				   0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n), 1);
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static int group_setup(void **state)
{
	(void)state;
	K.ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	K.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	K.other_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!K.ca_key || !K.key || !K.other_key)
		return -1;
	K.ca = make_cert(K.ca_key, "Test CA", NULL, NULL, T0 - 365 * DAY, T0 + 3650 * DAY);
	K.leaf = make_cert(K.key, "node-1", K.ca, K.ca_key, T0, T_END);
	K.ca_pem = cert_pem(K.ca);
	K.leaf_pem = cert_pem(K.leaf);
	K.key_pem = key_pem(K.key, NULL, false);
	K.key_trad_pem = key_pem(K.key, NULL, true);
	K.other_key_pem = key_pem(K.other_key, NULL, false);
	K.enc_pkcs8_pem = key_pem(K.key, EVP_aes_256_cbc(), false);
	K.enc_trad_pem = key_pem(K.key, EVP_aes_128_cbc(), true);
	/* the first base64 line of the key, from its second character on */
	const char *line = strchr(K.key_pem, '\n');
	if (!line || strlen(line) < sizeof(K.key_line) + 2)
		return -1;
	memcpy(K.key_line, line + 2, sizeof(K.key_line) - 1);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n;
	if (!X509_digest(K.leaf, EVP_sha256(), md, &n) || n != 32)
		return -1;
	for (unsigned int i = 0; i < n; i++)
		snprintf(K.fingerprint + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(K.ca_key);
	EVP_PKEY_free(K.key);
	EVP_PKEY_free(K.other_key);
	X509_free(K.ca);
	X509_free(K.leaf);
	free(K.ca_pem);
	free(K.leaf_pem);
	free(K.key_pem);
	free(K.key_trad_pem);
	free(K.other_key_pem);
	free(K.enc_pkcs8_pem);
	free(K.enc_trad_pem);
	return 0;
}

/* Replaces path with data (len bytes), mode set exactly (the umask does
 * not apply to fchmod). */
static void put(const char *path, const void *data, size_t len, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void put_str(const char *path, const char *s, mode_t mode)
{
	put(path, s, strlen(s), mode);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cvz-creds-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->ca, sizeof(f->ca), "%s/ca.pem", f->dir);
	snprintf(f->cert, sizeof(f->cert), "%s/client.pem", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/client.key", f->dir);
	snprintf(f->token, sizeof(f->token), "%s/token", f->dir);
	put_str(f->ca, K.ca_pem, 0644);
	put_str(f->cert, K.leaf_pem, 0644);
	put_str(f->key, K.key_pem, 0600);
	put_str(f->token, TOKEN "\n", 0600);
	/* As root, files are root's and the agent is someone else; otherwise
	 * the files are ours and we are the agent. */
	f->p = (struct creds_paths){ .ca_file = f->ca, .cert_file = f->cert, .key_file = f->key,
				     .token_file = f->token,
				     .agent_uid = geteuid() == 0 ? 4242 : geteuid() };
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int r = nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return r;
}

/* Every error of this file goes through here: it must name the file first
 * and hold nothing of the token or the key. */
static void assert_clean_error(const char *err, size_t len, const char *path)
{
	assert_non_null(memchr(err, '\0', len));
	if (strncmp(err, path, strlen(path)) != 0 || err[strlen(path)] != ':')
		fail_msg("error does not start with \"%s:\": %s", path, err);
	assert_null(strstr(err, TOKEN_MARK));
	assert_null(strstr(err, K.key_line));
	assert_null(strstr(err, "-----"));
}

static void refused(struct fx *f, int64_t now, int rc, const char *path, const char *needle)
{
	struct creds *sentinel = (struct creds *)&K, *c = sentinel;
	char err[512];
	memset(err, 'x', sizeof(err));
	int r = creds_load(&f->p, now, &c, err, sizeof(err));
	if (r != rc)
		fail_msg("expected %d (%s), got %d: %s", rc, strerror(-rc), r,
			 r == 0 ? "loaded" : err);
	assert_ptr_equal(c, sentinel);
	assert_clean_error(err, sizeof(err), path);
	if (!strstr(err, needle))
		fail_msg("\"%s\" not in: %s", needle, err);
}

static struct creds *loaded(struct fx *f, int64_t now)
{
	struct creds *c = NULL;
	char err[512];
	int r = creds_load(&f->p, now, &c, err, sizeof(err));
	if (r != 0)
		fail_msg("load failed (%d): %s", r, err);
	assert_non_null(c);
	return c;
}

static void test_good_set(void **state)
{
	struct fx *f = *state;
	struct creds *c = loaded(f, NOW);
	assert_string_equal(c->subject, "O = CloudViz, CN = node-1");
	assert_string_equal(c->fingerprint, K.fingerprint);
	assert_int_equal(c->not_before, T0);
	assert_int_equal(c->not_after, T_END);
	assert_int_equal(creds_days_left(c, NOW), 80);
	assert_int_equal(creds_days_left(c, T_END), 0);
	assert_int_equal(creds_days_left(c, T_END - 1), 0);
	assert_int_equal(creds_days_left(c, T_END - DAY), 1);
	assert_int_equal(creds_days_left(c, T_END + 1), -1);
	assert_int_equal(creds_days_left(c, T_END + DAY), -1);
	assert_int_equal(creds_days_left(c, T_END + DAY + 1), -2);
	/* the trailing newline is gone, and so are its bytes */
	assert_int_equal(c->token.len, strlen(TOKEN));
	assert_memory_equal(c->token.p, TOKEN, strlen(TOKEN));
	assert_int_equal(c->token.p[c->token.len], 0);
	assert_int_equal(c->key.len, strlen(K.key_pem));
	assert_memory_equal(c->key.p, K.key_pem, c->key.len);
	assert_int_equal(c->key.p[c->key.len], 0);
	assert_int_equal(c->cert_len, strlen(K.leaf_pem));
	assert_memory_equal(c->cert_pem, K.leaf_pem, c->cert_len);
	assert_int_equal(c->ca_len, strlen(K.ca_pem));
	assert_memory_equal(c->ca_pem, K.ca_pem, c->ca_len);
	creds_free(c);
	creds_free(NULL);
}

static void test_validity_edges(void **state)
{
	struct fx *f = *state;
	creds_free(loaded(f, T0));
	creds_free(loaded(f, T_END));
	refused(f, T0 - 1, -EINVAL, f->cert,
		"the certificate is not valid before 2026-01-01 00:00:00 UTC");
	refused(f, T_END + 1, -EINVAL, f->cert,
		"the certificate expired on 2026-04-01 00:00:00 UTC");
}

static void test_traditional_key_and_chain(void **state)
{
	struct fx *f = *state;
	put_str(f->key, K.key_trad_pem, 0400);
	char *chain;
	assert_true(asprintf(&chain, "%s%s", K.leaf_pem, K.ca_pem) > 0);
	put_str(f->cert, chain, 0644);
	struct creds *c = loaded(f, NOW);
	assert_string_equal(c->fingerprint, K.fingerprint);
	assert_int_equal(c->cert_len, strlen(chain));
	creds_free(c);
	free(chain);
}

static const struct {
	mode_t mode;
	const char *msg;
} bad_modes[] = {
	{ 0644, "mode 0644 lets group or others read it; chmod 0600" },
	{ 0640, "mode 0640 lets group or others read it; chmod 0600" },
	{ 0604, "mode 0604 lets group or others read it; chmod 0600" },
	{ 0620, "mode 0620 lets group or others write it; chmod 0600" },
	{ 0610, "mode 0610 lets group or others execute it; chmod 0600" },
	{ 0666, "mode 0666 lets group or others read it; chmod 0600" },
};

static void check_modes(struct fx *f, const char *path)
{
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		assert_int_equal(chmod(path, bad_modes[i].mode), 0);
		refused(f, NOW, -EPERM, path, bad_modes[i].msg);
	}
	assert_int_equal(chmod(path, 0600), 0);
	creds_free(loaded(f, NOW));
	assert_int_equal(chmod(path, 0400), 0);
	creds_free(loaded(f, NOW));
}

static void test_key_modes(void **state)
{
	struct fx *f = *state;
	check_modes(f, f->key);
}

static void test_token_modes(void **state)
{
	struct fx *f = *state;
	check_modes(f, f->token);
}

static void check_owner(struct fx *f, const char *path)
{
	if (geteuid() != 0) {
		print_message("not root: cannot give %s to another uid, owner check skipped\n",
			      path);
		skip();
	}
	assert_int_equal(chown(path, OTHER_UID, (gid_t)-1), 0);
	char msg[128];
	snprintf(msg, sizeof(msg),
		 "owned by uid %u; must be owned by root or the agent's user (uid %u)", OTHER_UID,
		 (unsigned)f->p.agent_uid);
	refused(f, NOW, -EPERM, path, msg);
	/* the agent's own user may own it */
	f->p.agent_uid = OTHER_UID;
	creds_free(loaded(f, NOW));
}

static void test_key_owner(void **state)
{
	struct fx *f = *state;
	check_owner(f, f->key);
}

static void test_token_owner(void **state)
{
	struct fx *f = *state;
	check_owner(f, f->token);
}

/* path becomes a symbolic link to a good 0600 file: refused all the same. */
static void check_not_regular(struct fx *f, const char *path)
{
	char real[160];
	snprintf(real, sizeof(real), "%s.real", path);
	assert_int_equal(rename(path, real), 0);
	assert_int_equal(symlink(real, path), 0);
	refused(f, NOW, -ELOOP, path, "is a symbolic link; name the file itself");
	assert_int_equal(unlink(path), 0);

	assert_int_equal(mkdir(path, 0700), 0);
	refused(f, NOW, -EINVAL, path, "is a directory, not a regular file");
	assert_int_equal(rmdir(path), 0);

	/* O_NONBLOCK: this must not hang waiting for a writer (if it does, the
	 * alarm ends the run instead of hanging it) */
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(30);
	refused(f, NOW, -EINVAL, path, "is a FIFO, not a regular file");
	alarm(0);
	assert_int_equal(unlink(path), 0);

	refused(f, NOW, -ENOENT, path, "cannot open: No such file or directory");
	assert_int_equal(rename(real, path), 0);
	creds_free(loaded(f, NOW));
}

static void test_key_not_regular(void **state)
{
	struct fx *f = *state;
	check_not_regular(f, f->key);
}

static void test_token_not_regular(void **state)
{
	struct fx *f = *state;
	check_not_regular(f, f->token);
}

static void test_token_trim(void **state)
{
	struct fx *f = *state;
	put_str(f->token, " \t" TOKEN " \r\n\n", 0600);
	struct creds *c = loaded(f, NOW);
	assert_int_equal(c->token.len, strlen(TOKEN));
	assert_memory_equal(c->token.p, TOKEN, strlen(TOKEN));
	/* what was trimmed is zero, not a shifted copy of the token's tail */
	for (size_t i = c->token.len; i < c->token.len + 8; i++)
		assert_int_equal(c->token.p[i], 0);
	creds_free(c);
}

static void test_token_refused(void **state)
{
	struct fx *f = *state;
	put_str(f->token, "", 0600);
	refused(f, NOW, -EINVAL, f->token, "is empty");
	put_str(f->token, " \n\t\n", 0600);
	refused(f, NOW, -EINVAL, f->token, "holds only whitespace, no token");
	/* 4 + 11 bytes before the form feed, 2 leading spaces: byte 18 */
	put_str(f->token, "  cvz-" TOKEN_MARK "\fmore\n", 0600);
	refused(f, NOW, -EINVAL, f->token,
		"the token holds a character not allowed in an HTTP header (byte 18 of the file)");
	put_str(f->token, "cvz-" TOKEN_MARK " more\n", 0600);
	refused(f, NOW, -EINVAL, f->token, "(byte 16 of the file)");
	put_str(f->token, "cvz-" TOKEN_MARK "\xc3\xa9\n", 0600);
	refused(f, NOW, -EINVAL, f->token, "(byte 16 of the file)");
	put(f->token, "cvz-" TOKEN_MARK "\0x", 17, 0600);
	refused(f, NOW, -EINVAL, f->token, "(byte 16 of the file)");
	put_str(f->token, "cvz-" TOKEN_MARK "\x7f", 0600);
	refused(f, NOW, -EINVAL, f->token, "(byte 16 of the file)");
}

static void test_too_large(void **state)
{
	struct fx *f = *state;
	size_t n = (64u << 10) + 1;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, 'A', n);
	put(f->key, big, n, 0600);
	refused(f, NOW, -EFBIG, f->key, "larger than 65536 bytes");
	put_str(f->key, K.key_pem, 0600);
	put(f->token, big, 8193, 0600);
	refused(f, NOW, -EFBIG, f->token, "larger than 8192 bytes");
	put(f->token, big, 8192, 0600);
	creds_free(loaded(f, NOW));
	free(big);
	big = calloc(1, (1u << 20) + 1);
	assert_non_null(big);
	put(f->ca, big, (1u << 20) + 1, 0644);
	refused(f, NOW, -EFBIG, f->ca, "larger than 1048576 bytes");
	free(big);
}

static void test_key_refused(void **state)
{
	struct fx *f = *state;
	put_str(f->key, K.other_key_pem, 0600);
	char msg[256];
	snprintf(msg, sizeof(msg), "the private key does not belong to the certificate in %s",
		 f->cert);
	refused(f, NOW, -EINVAL, f->key, msg);

	const char *encrypted = "the private key is encrypted; cloudviz-agent needs an "
				"unencrypted key readable only by root or its user";
	put_str(f->key, K.enc_pkcs8_pem, 0600);
	refused(f, NOW, -EINVAL, f->key, encrypted);
	put_str(f->key, K.enc_trad_pem, 0600);
	refused(f, NOW, -EINVAL, f->key, encrypted);

	put_str(f->key, "not a key at all\n", 0600);
	refused(f, NOW, -EINVAL, f->key, "not a PEM private key");
	put_str(f->key, K.leaf_pem, 0600);
	refused(f, NOW, -EINVAL, f->key, "not a PEM private key");
	put_str(f->key, "", 0600);
	refused(f, NOW, -EINVAL, f->key, "is empty");
}

static void test_cert_refused(void **state)
{
	struct fx *f = *state;
	put_str(f->cert, "garbage\n", 0644);
	refused(f, NOW, -EINVAL, f->cert, "not a PEM certificate");
	put_str(f->cert, "", 0644);
	refused(f, NOW, -EINVAL, f->cert, "not a PEM certificate");
	char *s;
	assert_true(asprintf(&s, "%s-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
			     K.leaf_pem) > 0);
	put_str(f->cert, s, 0644);
	refused(f, NOW, -EINVAL, f->cert,
		"block 2 of the certificate chain is not a PEM certificate");
	free(s);
	/* a combined cert+key file would put key bytes in public memory */
	assert_true(asprintf(&s, "%s%s", K.leaf_pem, K.key_pem) > 0);
	put_str(f->cert, s, 0600);
	refused(f, NOW, -EINVAL, f->cert, "holds a private key");
	free(s);
	assert_int_equal(unlink(f->cert), 0);
	assert_int_equal(mkdir(f->cert, 0755), 0);
	refused(f, NOW, -EINVAL, f->cert, "is a directory, not a regular file");
}

static void test_ca_refused(void **state)
{
	struct fx *f = *state;
	put_str(f->ca, "", 0644);
	refused(f, NOW, -EINVAL, f->ca, "holds no PEM certificate");
	put_str(f->ca, "garbage\nmore garbage\n", 0644);
	refused(f, NOW, -EINVAL, f->ca, "holds no PEM certificate");
	put_str(f->ca, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0644);
	refused(f, NOW, -EINVAL, f->ca, "a block is not a readable PEM certificate");
	put_str(f->ca, K.key_pem, 0600);
	refused(f, NOW, -EINVAL, f->ca, "holds a private key");
	assert_int_equal(unlink(f->ca), 0);
	refused(f, NOW, -ENOENT, f->ca, "cannot open: No such file or directory");
}

/* The certificate is public: it may be a link (ACME clients), any owner,
 * any mode. */
static void test_public_files_relaxed(void **state)
{
	struct fx *f = *state;
	char real[160];
	snprintf(real, sizeof(real), "%s.real", f->cert);
	assert_int_equal(rename(f->cert, real), 0);
	assert_int_equal(symlink(real, f->cert), 0);
	if (geteuid() == 0)
		assert_int_equal(chown(real, OTHER_UID, (gid_t)-1), 0);
	assert_int_equal(chmod(real, 0666), 0);
	creds_free(loaded(f, NOW));
}

/* The CA file decides whom the agent trusts: whoever can write it can
 * impersonate the control plane. Readable by anyone, but written only by
 * root or the agent's user, and not through a link. */
static void test_ca_integrity(void **state)
{
	struct fx *f = *state;
	assert_int_equal(chmod(f->ca, 0664), 0);
	refused(f, NOW, -EPERM, f->ca, "mode 0664 lets its group write it");
	assert_int_equal(chmod(f->ca, 0646), 0);
	refused(f, NOW, -EPERM, f->ca, "mode 0646 lets others write it");
	assert_int_equal(chmod(f->ca, 0666), 0);
	refused(f, NOW, -EPERM, f->ca, "chmod go-w");
	assert_int_equal(chmod(f->ca, 0444), 0);
	creds_free(loaded(f, NOW));
	assert_int_equal(chmod(f->ca, 0644), 0);
	creds_free(loaded(f, NOW));

	char real[160];
	snprintf(real, sizeof(real), "%s.real", f->ca);
	assert_int_equal(rename(f->ca, real), 0);
	assert_int_equal(symlink(real, f->ca), 0);
	refused(f, NOW, -ELOOP, f->ca, "is a symbolic link; name the file itself");
	assert_int_equal(unlink(f->ca), 0);
	assert_int_equal(rename(real, f->ca), 0);

	if (geteuid() != 0) {
		print_message("not root: cannot give the CA file away, owner check skipped\n");
		return;
	}
	assert_int_equal(chown(f->ca, OTHER_UID, (gid_t)-1), 0);
	char msg[128];
	snprintf(msg, sizeof(msg),
		 "owned by uid %u; must be owned by root or the agent's user (uid %u)", OTHER_UID,
		 (unsigned)f->p.agent_uid);
	refused(f, NOW, -EPERM, f->ca, msg);
	f->p.agent_uid = OTHER_UID;
	creds_free(loaded(f, NOW));
}

static void test_small_err_buffer(void **state)
{
	struct fx *f = *state;
	assert_int_equal(chmod(f->key, 0644), 0);
	struct creds *c = NULL;
	char err[8];
	memset(err, 'x', sizeof(err));
	assert_int_equal(creds_load(&f->p, NOW, &c, err, sizeof(err)), -EPERM);
	assert_int_equal(err[sizeof(err) - 1], '\0');
	assert_int_equal(strncmp(err, f->key, sizeof(err) - 1), 0);
	assert_int_equal(creds_load(&f->p, NOW, &c, NULL, 0), -EPERM);
	assert_null(c);
}

/* secbuf: exact reads through a pipe and a regular file, around page
 * boundaries, and the size cap. */
static void read_pipe(size_t n, size_t max, int rc)
{
	unsigned char *data = malloc(n + 1);
	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)(i * 7 + 1);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], data, n), (ssize_t)n);
	close(fds[1]);
	struct secbuf b = { .len = 77 };
	assert_int_equal(secbuf_read_fd(fds[0], max, &b), rc);
	close(fds[0]);
	if (rc == 0) {
		assert_int_equal(b.len, n);
		assert_memory_equal(b.p, data, n);
		assert_int_equal(b.p[n], 0);
		assert_true(b.map_len > n && b.map_len % (size_t)sysconf(_SC_PAGESIZE) == 0);
		secbuf_free(&b);
	} else {
		assert_null(b.p);
		assert_int_equal(b.len, 77);
	}
	free(data);
}

static void test_secbuf_read_pipe(void **state)
{
	(void)state;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t sizes[] = { 0, 1, pg - 1, pg, pg + 1, 2 * pg - 1, 10000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		read_pipe(sizes[i], sizes[i], 0);
		read_pipe(sizes[i], sizes[i] + 100, 0);
		if (sizes[i] > 0)
			read_pipe(sizes[i], sizes[i] - 1, -EFBIG);
	}
}

static void test_secbuf_read_file(void **state)
{
	struct fx *f = *state;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t sizes[] = { 1, pg - 1, pg, 5000 };
	char path[160];
	snprintf(path, sizeof(path), "%s/blob", f->dir);
	char *data = malloc(5000);
	assert_non_null(data);
	memset(data, 'k', 5000);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		put(path, data, sizes[i], 0600);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		struct secbuf b;
		assert_int_equal(secbuf_read_fd(fd, sizes[i], &b), 0);
		assert_int_equal(b.len, sizes[i]);
		assert_memory_equal(b.p, data, sizes[i]);
		assert_int_equal(b.p[b.len], 0);
		secbuf_free(&b);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		assert_int_equal(secbuf_read_fd(fd, sizes[i] - 1, &b), -EFBIG);
		close(fd);
	}
	free(data);
}

/* The VmFlags line of the mapping that holds addr, from /proc/self/smaps. */
static void vmflags_of(const void *addr, char *out, size_t len)
{
	FILE *fp = fopen("/proc/self/smaps", "re");
	assert_non_null(fp);
	char line[512];
	bool inside = false;
	out[0] = '\0';
	while (fgets(line, sizeof(line), fp)) {
		unsigned long lo, hi;
		/* a mapping's header line, "start-end perms ...": no field name
		 * ("Size:", "Anonymous:") is hex digits then '-' */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, len, "%s", line + 8);
			break;
		}
	}
	fclose(fp);
	assert_true(out[0] != '\0');
}

static void test_secbuf_dontdump(void **state)
{
	struct fx *f = *state;
	int fd = open(f->key, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct secbuf b;
	assert_int_equal(secbuf_read_fd(fd, 65536, &b), 0);
	close(fd);
	char flags[256];
	vmflags_of(b.p, flags, sizeof(flags));
	if (!strstr(flags, " dd"))
		fail_msg("the key's mapping is not marked dont-dump: VmFlags:%s", flags);
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's mlock() interceptor succeeds without locking anything. */
	print_message("secbuf: under ASan mlock() is a no-op; not checking \"lo\"\n");
#else
	assert_int_equal(strstr(flags, " lo") != NULL, b.locked);
#endif
	print_message("secbuf: mlock %s, wipe-on-fork %s; VmFlags:%s",
		      b.locked ? "succeeded" : "failed (best effort)",
		      strstr(flags, " wf") ? "on" : "off", flags);
	secbuf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.map_len, 0);
	secbuf_free(&b); /* twice is fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validity_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_traditional_key_and_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_not_regular, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_not_regular, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_trim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cert_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_public_files_relaxed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_integrity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_err_buffer, setup, teardown),
		cmocka_unit_test(test_secbuf_read_pipe),
		cmocka_unit_test_setup_teardown(test_secbuf_read_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secbuf_dontdump, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
