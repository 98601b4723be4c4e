/* pkcs11/keyprov_p11.c: the PKCS#11 key provider behind common/keyprov.h.
 *
 * Two handles on one module instance:
 *   - libp11 0.4.12 (PKCS11_CTX): module loading, slot/token lookup, and the
 *     private key as an OpenSSL EVP_PKEY for the "oaep-sha256-host" unwrap
 *     (the token does raw RSA, CKM_RSA_X_509; OpenSSL removes the OAEP
 *     padding; see unwrap_host()).
 *   - the module's own CK_FUNCTION_LIST, from our dlopen() of the same path
 *     (the dynamic loader maps a library once, so this is the instance
 *     libp11 loads and initialises): login, key generation with an explicit
 *     template, object search, attribute reads, C_DestroyObject and the
 *     in-token CKM_RSA_PKCS_OAEP unwrap. libp11 0.4.12 has no accessor for
 *     the function list.
 *
 * Threads: every call into the module runs on one worker thread per provider.
 * A caller heap-allocates a job, queues it and waits on a CLOCK_MONOTONIC
 * condition variable for at most timeout_ms. A job holds two references
 * (caller and worker) and everything it reads or writes, so a caller that
 * gives up can return while the worker is still inside the module: whoever
 * drops the last reference frees the job. A timeout poisons the provider:
 * later calls fail fast with -VLT_E_HSM_TIMEOUT and keyprov_close() neither
 * joins the stuck thread nor unloads the module (see keyprov_close()).
 *
 * Login: we call C_Login ourselves on a session of our own instead of
 * PKCS11_login(). Login state belongs to the application and token, so
 * libp11's sessions are logged in as well; we get the exact CKR_* code (wrong
 * vs locked PIN) without decoding the OpenSSL error queue; and libp11 never
 * sees the PIN. PKCS11_login() in 0.4.12 keeps an OPENSSL_strdup()ed copy
 * of the PIN in its slot (prev_pin, for re-login when it reloads the slot
 * after fork()) that the public API cannot wipe before the context is
 * freed; bypassing it means the only PIN copy is our struct secret, freed
 * right after C_Login. (We still pass through the module, which may keep
 * what it derives from the PIN; that is the token's business.)
 * (libp11's re-login is not needed: we never use PKCS#11 after fork(), and
 * an HSM failure is handled by closing and reopening the provider.)
 *
 * Limitation: PKCS#11 modules are per process. Two providers open on the
 * same module share it; closing one calls C_Finalize (through libp11's
 * PKCS11_CTX_unload) under the other. The daemon opens one provider at a time.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libp11.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "common/err.h"
#include "common/keyprov.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/util.h"
#include "pkcs11/keyprov_p11_test.h"
#include "pkcs11/pin.h"

/* Last: in its default compatibility mode p11-kit's pkcs11.h #defines plain
 * words (value, count, params, ...) that must not reach other headers. */
#include <p11-kit/pkcs11.h>

#define RSA_BITS 3072
#define RSA_BITS_MIN 2048               /* blob ciphertexts are 256..512 bytes */
#define RSA_BITS_MAX 4096
#define DEFAULT_TIMEOUT_MS 10000
#define ATTR_MAX 2048                   /* largest attribute we read (a 4096-bit modulus is 512) */

DEFINE_CLEANUP(EVP_PKEY *, EVP_PKEY_free)
DEFINE_CLEANUP(EVP_PKEY_CTX *, EVP_PKEY_CTX_free)
DEFINE_CLEANUP(BIGNUM *, BN_free)
DEFINE_CLEANUP(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free)
DEFINE_CLEANUP(OSSL_PARAM *, OSSL_PARAM_free)

enum job_op {
	JOB_OPEN,
	JOB_CLOSE,
	JOB_GENERATE,
	JOB_FIND,
	JOB_DESTROY,
	JOB_PUBKEY,
	JOB_UNWRAP,
	JOB_TEST_ATTRS,
};

static const char *const job_names[] = {
	[JOB_OPEN] = "open",
	[JOB_CLOSE] = "close",
	[JOB_GENERATE] = "generate",
	[JOB_FIND] = "find",
	[JOB_DESTROY] = "destroy",
	[JOB_PUBKEY] = "public-key",
	[JOB_UNWRAP] = "unwrap",
	[JOB_TEST_ATTRS] = "test-attrs",
};

/* One request to the worker. Inputs are copies and outputs stay here until
 * the caller takes them: after a timeout the caller is gone and only the job
 * is left for the worker to write into. */
/* What the last failed call of this thread was about, for the operator:
 * paths, labels, versions, library errors; never a PIN. A call into the
 * worker carries the worker's detail back (job.detail). */
static _Thread_local char last_detail[256];

void set_detail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(last_detail, sizeof(last_detail), fmt, ap);
	va_end(ap);
	log_debug("%s", last_detail);
}

const char *keyprov_error_detail(void)
{
	return last_detail;
}

struct job {
	struct job *next;
	enum job_op op;
	unsigned refs;                  /* under kp->mtx */
	bool done;
	int result;

	char label[KEYPROV_LABEL_MAX + 1];
	uint32_t version;
	struct secret *pin;             /* JOB_OPEN; wiped right after C_Login */
	uint8_t *blob;                  /* JOB_UNWRAP: our copy of the caller's blob */
	struct keyprov_blob b;          /* parsed from blob; b.ct points into it */

	EVP_PKEY *pubkey;               /* JOB_PUBKEY */
	struct secret *rk;              /* JOB_UNWRAP */
	struct keyprov_p11_test_attrs attrs;
	char detail[sizeof(last_detail)];      /* the worker's set_detail() */
};

struct keyprov {
	pthread_mutex_t mtx;
	pthread_cond_t work_cv;         /* worker: a job was queued, or abandoned */
	pthread_cond_t done_cv;         /* callers: a job finished, or poisoned */
	struct job *head, *tail;
	bool poisoned;                  /* a call timed out; nothing may touch the token */
	bool abandoned;                 /* closed while poisoned: the worker exits when it can */
	bool worker_gone;
	unsigned delay_ms;              /* test hook */
	unsigned timeout_ms;
	pid_t pid;
	pthread_t worker;
	struct keyprov *grave_next;

	/* Worker thread only. */
	char *module_path, *token_label;
	PKCS11_CTX *ctx;
	bool loaded;
	PKCS11_SLOT *slots;
	unsigned nslots;
	PKCS11_SLOT *slot;
	CK_SLOT_ID slot_id;
	void *dl;
	CK_FUNCTION_LIST_PTR fl;
	CK_SESSION_HANDLE sess;
	bool have_sess, logged_in;
};

/* Providers closed while a call was stuck in the module. We cannot free them
 * (the worker may still use them) nor unload the module (the stuck call runs
 * inside it), so they are leaked on purpose, but kept reachable here so leak
 * checkers and debuggers see them as owned. */
static pthread_mutex_t graveyard_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct keyprov *graveyard;

/* ---- helpers without the token ---- */

/* Empties this thread's OpenSSL error queue into debug logs and returns the
 * last PKCS#11 return value libp11 recorded there (libp11 pushes CKR_*
 * codes as the reason under its own library code), or CKR_OK. Debug only:
 * the caller logs the decision. */
static unsigned long ssl_errors_drain(const char *what)
{
	unsigned long e, ckr = 0;
	int ckr_lib = ERR_get_CKR_code();
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(e) == ckr_lib)
			ckr = (unsigned long)ERR_GET_REASON(e);
		ERR_error_string_n(e, buf, sizeof(buf));
		log_debug("%s: %s", what, buf);
	}
	return ckr;
}

static int label_check(const char *label)
{
	size_t n;

	if (!label)
		return -EINVAL;
	n = strnlen(label, KEYPROV_LABEL_MAX + 1);
	if (n < 1 || n > KEYPROV_LABEL_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (label[i] < 0x20 || label[i] > 0x7e)
			return -EINVAL;
	return 0;
}

static bool mech_hash_valid(enum keyprov_mech mech, enum keyprov_hash hash)
{
	if (mech == KEYPROV_MECH_OAEP_HOST)
		return hash == KEYPROV_HASH_SHA256;
	if (mech == KEYPROV_MECH_OAEP_TOKEN)
		return hash == KEYPROV_HASH_SHA1 || hash == KEYPROV_HASH_SHA256;
	return false;
}

static const EVP_MD *oaep_md(enum keyprov_hash hash)
{
	return hash == KEYPROV_HASH_SHA1 ? EVP_sha1() : EVP_sha256();
}

static int login_error(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
	case CKR_USER_ALREADY_LOGGED_IN:        /* another provider in this process logged in */
		return 0;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		return -VLT_E_HSM_PIN;
	case CKR_PIN_LOCKED:
		return -VLT_E_HSM_PIN_LOCKED;
	case CKR_USER_PIN_NOT_INITIALIZED:
		return -VLT_E_HSM_TOKEN;
	default:
		return -VLT_E_HSM;
	}
}

int keyprov_p11_test_login_error(unsigned long ckr)
{
	return login_error((CK_RV)ckr);
}

/* ---- worker side: everything below runs on the worker thread ---- */

static void version_id(uint32_t version, CK_BYTE id[4])
{
	put_be32(id, version);
}

/* Exactly one object of class cls with (label, version). */
static int find_object(struct keyprov *kp, CK_OBJECT_CLASS cls, const char *label, uint32_t version,
		       CK_OBJECT_HANDLE *ret)
{
	CK_BYTE id[4];
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, id, sizeof(id) },
	};
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	CK_RV rv;

	version_id(version, id);
	rv = kp->fl->C_FindObjectsInit(kp->sess, tmpl, ELEMENTSOF(tmpl));
	if (rv != CKR_OK) {
		log_debug("C_FindObjectsInit: 0x%lx", (unsigned long)rv);
		return -VLT_E_HSM;
	}
	rv = kp->fl->C_FindObjects(kp->sess, h, ELEMENTSOF(h), &n);
	(void)kp->fl->C_FindObjectsFinal(kp->sess);
	if (rv != CKR_OK) {
		log_debug("C_FindObjects: 0x%lx", (unsigned long)rv);
		return -VLT_E_HSM;
	}
	if (n == 0) {
		set_detail("no %s labelled '%s' with version %u (CKA_ID %08x) in the token",
			   cls == CKO_PRIVATE_KEY ? "private key" : "public key", label, version, version);
		return -VLT_E_HSM_KEY_NOT_FOUND;
	}
	if (n > 1) {
		/* Someone else created a duplicate; refuse to guess. */
		set_detail("several %s objects for '%s' version %u",
			  cls == CKO_PRIVATE_KEY ? "private key" : "public key", label, version);
		return -VLT_E_HSM;
	}
	*ret = h[0];
	return 0;
}

/* A byte-string attribute, malloc()ed. Only for public values (modulus,
 * exponent). */
static int attr_bytes(struct keyprov *kp, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, uint8_t **ret,
		      size_t *ret_len)
{
	_cleanup_free_ uint8_t *buf = NULL;
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	rv = kp->fl->C_GetAttributeValue(kp->sess, h, &a, 1);
	if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen == 0 ||
	    a.ulValueLen > ATTR_MAX) {
		log_debug("C_GetAttributeValue(0x%lx): 0x%lx", (unsigned long)type, (unsigned long)rv);
		return -VLT_E_HSM;
	}
	buf = malloc(a.ulValueLen);
	if (!buf)
		return -ENOMEM;
	a.pValue = buf;
	rv = kp->fl->C_GetAttributeValue(kp->sess, h, &a, 1);
	if (rv != CKR_OK) {
		log_debug("C_GetAttributeValue(0x%lx): 0x%lx", (unsigned long)type, (unsigned long)rv);
		return -VLT_E_HSM;
	}
	*ret_len = a.ulValueLen;
	*ret = TAKE_PTR(buf);
	return 0;
}

static int attr_bool(struct keyprov *kp, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, bool *ret)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };
	CK_RV rv;

	rv = kp->fl->C_GetAttributeValue(kp->sess, h, &a, 1);
	if (rv != CKR_OK || a.ulValueLen != sizeof(v)) {
		log_debug("C_GetAttributeValue(0x%lx): 0x%lx", (unsigned long)type, (unsigned long)rv);
		return -VLT_E_HSM;
	}
	*ret = v == CK_TRUE;
	return 0;
}

static int bn_from_attr(struct keyprov *kp, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, BIGNUM **ret)
{
	_cleanup_free_ uint8_t *buf = NULL;
	BIGNUM *bn;
	size_t n;
	int r;

	r = attr_bytes(kp, h, type, &buf, &n);
	if (r < 0)
		return r;
	bn = BN_bin2bn(buf, (int)n, NULL);
	if (!bn)
		return -ENOMEM;
	*ret = bn;
	return 0;
}

static void session_teardown(struct keyprov *kp)
{
	if (kp->have_sess) {
		if (kp->logged_in)
			(void)kp->fl->C_Logout(kp->sess);
		(void)kp->fl->C_CloseSession(kp->sess);
	}
	kp->have_sess = kp->logged_in = false;
	kp->fl = NULL;
	if (kp->slots)
		PKCS11_release_all_slots(kp->ctx, kp->slots, kp->nslots);
	kp->slots = NULL;
	kp->slot = NULL;
	if (kp->ctx) {
		if (kp->loaded)
			PKCS11_CTX_unload(kp->ctx);     /* C_Finalize, then unload */
		PKCS11_CTX_free(kp->ctx);
	}
	kp->ctx = NULL;
	kp->loaded = false;
	if (kp->dl)
		(void)dlclose(kp->dl);  /* last: our reference kept the module mapped until now */
	kp->dl = NULL;
}

static int token_pin_locked(struct keyprov *kp, bool *ret)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;

	rv = kp->fl->C_GetTokenInfo(kp->slot_id, &ti);
	if (rv != CKR_OK) {
		log_debug("C_GetTokenInfo: 0x%lx", (unsigned long)rv);
		return -VLT_E_HSM;
	}
	*ret = ti.flags & CKF_USER_PIN_LOCKED;
	return 0;
}

/* Asks every slot with a token for its token info before libp11 does.
 * libp11 0.4.12 leaks what it allocated for a slot whose token answers an
 * error in the middle of PKCS11_enumerate_slots() (a pulled USB token, a
 * partition gone), and says nothing of why; here the slot and the CKR code
 * are named. A module with more slots than we ask about is left to libp11. */
static int tokens_answer(struct keyprov *kp)
{
	CK_SLOT_ID ids[64];
	CK_ULONG n = ELEMENTSOF(ids);
	CK_TOKEN_INFO ti;
	CK_RV rv;

	rv = kp->fl->C_GetSlotList(CK_TRUE, ids, &n);
	if (rv == CKR_BUFFER_TOO_SMALL)
		return 0;
	if (rv != CKR_OK) {
		set_detail("C_GetSlotList of '%s' answered CKR 0x%lx", kp->module_path, (unsigned long)rv);
		return -VLT_E_HSM;
	}
	for (CK_ULONG i = 0; i < n; i++) {
		rv = kp->fl->C_GetTokenInfo(ids[i], &ti);
		if (rv != CKR_OK) {
			set_detail("the token in slot %lu does not answer: C_GetTokenInfo gave CKR 0x%lx%s",
				   (unsigned long)ids[i], (unsigned long)rv,
				   rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ? " (the token is gone)" : "");
			return -VLT_E_HSM;
		}
	}
	return 0;
}

static int run_open(struct keyprov *kp, struct job *job)
{
	CK_C_GetFunctionList get_function_list;
	CK_INFO info;
	CK_RV rv;
	unsigned matches = 0;
	bool locked;
	int r;

	/* Our own handle first: a missing or broken module is reported here
	 * (dlerror() at debug level) instead of by libp11 on stderr. libp11's
	 * own dlopen() of the same path then yields this same instance, and
	 * its C_Initialize is the one that counts. RTLD_LOCAL keeps the
	 * module's symbols out of the global scope. */
	kp->dl = dlopen(kp->module_path, RTLD_NOW | RTLD_LOCAL);
	if (!kp->dl) {
		set_detail("dlopen('%s'): %s", kp->module_path, dlerror());
		return -VLT_E_HSM_MODULE;
	}
	get_function_list = (CK_C_GetFunctionList)dlsym(kp->dl, "C_GetFunctionList");
	if (!get_function_list) {
		set_detail("'%s' is not a PKCS#11 module (no C_GetFunctionList)", kp->module_path);
		return -VLT_E_HSM_MODULE;
	}

	kp->ctx = PKCS11_CTX_new();
	if (!kp->ctx)
		return -ENOMEM;
	if (PKCS11_CTX_load(kp->ctx, kp->module_path) < 0) {
		set_detail("libp11 cannot load PKCS#11 module '%s'", kp->module_path);
		return -VLT_E_HSM_MODULE;
	}
	kp->loaded = true;

	if (get_function_list(&kp->fl) != CKR_OK || !kp->fl)
		return -VLT_E_HSM_MODULE;
	/* Proves it is libp11's initialised instance: a separate copy would
	 * answer CKR_CRYPTOKI_NOT_INITIALIZED. */
	rv = kp->fl->C_GetInfo(&info);
	if (rv != CKR_OK) {
		log_debug("C_GetInfo: 0x%lx", (unsigned long)rv);
		return -VLT_E_HSM_MODULE;
	}

	if ((r = tokens_answer(kp)) < 0)
		return r;
	if (PKCS11_enumerate_slots(kp->ctx, &kp->slots, &kp->nslots) < 0) {
		kp->slots = NULL;
		set_detail("libp11 could not enumerate the slots of '%s'", kp->module_path);
		return -VLT_E_HSM;
	}
	/* PKCS11_find_token() returns the "best" token, not the one we named:
	 * match the label ourselves and refuse an ambiguous one. */
	for (unsigned i = 0; i < kp->nslots; i++) {
		PKCS11_TOKEN *tok = kp->slots[i].token;

		if (tok && tok->initialized && tok->label && streq(tok->label, kp->token_label)) {
			kp->slot = &kp->slots[i];
			matches++;
		}
	}
	if (matches != 1) {
		set_detail("%s token labelled '%s'", matches ? "more than one" : "no", kp->token_label);
		kp->slot = NULL;
		return -VLT_E_HSM_TOKEN;
	}
	kp->slot_id = PKCS11_get_slotid_from_slot(kp->slot);

	/* libp11 0.4.12: choose read-write sessions once, before login. */
	if (PKCS11_open_session(kp->slot, 1) < 0)
		return -VLT_E_HSM;

	/* A locked PIN is reported by the token flags; do not spend a try. */
	r = token_pin_locked(kp, &locked);
	if (r < 0)
		return r;
	if (locked)
		return -VLT_E_HSM_PIN_LOCKED;

	rv = kp->fl->C_OpenSession(kp->slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &kp->sess);
	if (rv != CKR_OK) {
		log_debug("C_OpenSession: 0x%lx", (unsigned long)rv);
		return -VLT_E_HSM;
	}
	kp->have_sess = true;

	rv = kp->fl->C_Login(kp->sess, CKU_USER, job->pin->p, job->pin->len);
	secret_free(TAKE_PTR(job->pin));        /* wiped now, whatever the outcome */
	r = login_error(rv);
	if (r < 0) {
		set_detail("token '%s' refused the login (C_Login: 0x%lx)", kp->token_label, (unsigned long)rv);
		/* Some tokens lock on the last wrong try and still say
		 * CKR_PIN_INCORRECT: the flags tell. */
		if (r == -VLT_E_HSM_PIN && token_pin_locked(kp, &locked) == 0 && locked)
			return -VLT_E_HSM_PIN_LOCKED;
		return r;
	}
	/* CKR_USER_ALREADY_LOGGED_IN belongs to another provider's login;
	 * logging out on close is then theirs to do. */
	kp->logged_in = rv == CKR_OK;
	return 0;
}

static int run_generate(struct keyprov *kp, struct job *job)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = RSA_BITS;
	CK_BYTE exponent[] = { 0x01, 0x00, 0x01 };     /* 65537 */
	CK_BYTE id[4];
	CK_ULONG label_len = strlen(job->label);
	CK_ATTRIBUTE pub_tmpl[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_VERIFY, &no, sizeof(no) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_MODULUS_BITS, &bits, sizeof(bits) },
		{ CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent) },
		{ CKA_LABEL, job->label, label_len },
		{ CKA_ID, id, sizeof(id) },
	};
	CK_ATTRIBUTE priv_tmpl[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
		{ CKA_SIGN, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
		{ CKA_LABEL, job->label, label_len },
		{ CKA_ID, id, sizeof(id) },
	};
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE pub, priv;
	bool sensitive = false, extractable = true;
	CK_RV rv;
	int r;

	/* Either half present means the name is taken. */
	r = find_object(kp, CKO_PRIVATE_KEY, job->label, job->version, &priv);
	if (r == 0)
		return -VLT_E_HSM_KEY_EXISTS;
	if (r != -VLT_E_HSM_KEY_NOT_FOUND)
		return r;
	r = find_object(kp, CKO_PUBLIC_KEY, job->label, job->version, &pub);
	if (r == 0)
		return -VLT_E_HSM_KEY_EXISTS;
	if (r != -VLT_E_HSM_KEY_NOT_FOUND)
		return r;

	version_id(job->version, id);
	rv = kp->fl->C_GenerateKeyPair(kp->sess, &mech, pub_tmpl, ELEMENTSOF(pub_tmpl), priv_tmpl,
				       ELEMENTSOF(priv_tmpl), &pub, &priv);
	if (rv != CKR_OK) {
		log_debug("C_GenerateKeyPair('%s' version %u): 0x%lx", job->label, job->version,
			  (unsigned long)rv);
		return rv == CKR_MECHANISM_INVALID ? -VLT_E_HSM_MECH : -VLT_E_HSM;
	}

	/* A token may quietly ignore template attributes; a wrapping key that
	 * could leave the token is worse than none. */
	if (attr_bool(kp, priv, CKA_SENSITIVE, &sensitive) < 0 ||
	    attr_bool(kp, priv, CKA_EXTRACTABLE, &extractable) < 0 || !sensitive || extractable) {
		log_debug("generated key '%s' version %u is not sensitive/non-extractable; destroying it",
			  job->label, job->version);
		(void)kp->fl->C_DestroyObject(kp->sess, priv);
		(void)kp->fl->C_DestroyObject(kp->sess, pub);
		return -VLT_E_HSM;
	}
	return 0;
}

static int run_find(struct keyprov *kp, struct job *job)
{
	CK_OBJECT_HANDLE h;
	int r;

	r = find_object(kp, CKO_PRIVATE_KEY, job->label, job->version, &h);
	if (r < 0)
		return r;
	return find_object(kp, CKO_PUBLIC_KEY, job->label, job->version, &h);
}

static int run_destroy(struct keyprov *kp, struct job *job)
{
	static const CK_OBJECT_CLASS classes[] = { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY };
	unsigned destroyed = 0;

	/* Destroys whichever half exists, so a half-deleted pair can be
	 * cleaned up; not found only if neither is there. */
	for (size_t i = 0; i < ELEMENTSOF(classes); i++) {
		CK_OBJECT_HANDLE h;
		CK_RV rv;
		int r;

		r = find_object(kp, classes[i], job->label, job->version, &h);
		if (r == -VLT_E_HSM_KEY_NOT_FOUND)
			continue;
		if (r < 0)
			return r;
		rv = kp->fl->C_DestroyObject(kp->sess, h);
		if (rv != CKR_OK) {
			log_debug("C_DestroyObject: 0x%lx", (unsigned long)rv);
			return -VLT_E_HSM;
		}
		destroyed++;
	}
	return destroyed > 0 ? 0 : -VLT_E_HSM_KEY_NOT_FOUND;
}

/* The public half as a plain OpenSSL key (no libp11 method attached), so
 * wrapping runs entirely in OpenSSL. Also checks that the private half
 * exists and, where the token shows it, has the same modulus: we must never
 * wrap the RK to a key that cannot unwrap it. */
static int run_pubkey(struct keyprov *kp, struct job *job)
{
	_cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL, *priv_n = NULL;
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	CK_OBJECT_HANDLE pub, priv;
	int r, bits;

	r = find_object(kp, CKO_PRIVATE_KEY, job->label, job->version, &priv);
	if (r < 0)
		return r;
	r = find_object(kp, CKO_PUBLIC_KEY, job->label, job->version, &pub);
	if (r < 0)
		return r;
	if ((r = bn_from_attr(kp, pub, CKA_MODULUS, &n)) < 0 ||
	    (r = bn_from_attr(kp, pub, CKA_PUBLIC_EXPONENT, &e)) < 0)
		return r;
	bits = BN_num_bits(n);
	if (bits < RSA_BITS_MIN || bits > RSA_BITS_MAX) {
		log_debug("key '%s' version %u has a %d-bit modulus", job->label, job->version, bits);
		return -VLT_E_HSM;
	}
	if (bn_from_attr(kp, priv, CKA_MODULUS, &priv_n) == 0 && BN_cmp(n, priv_n) != 0) {
		log_debug("key '%s' version %u: public and private halves do not match",
			  job->label, job->version);
		return -VLT_E_HSM;
	}

	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		return -ENOMEM;
	params = OSSL_PARAM_BLD_to_param(bld);
	pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !pctx)
		return -ENOMEM;
	if (EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		return -VLT_E_HSM;
	job->pubkey = pkey;
	return 0;
}

/* libp11's EVP_PKEY for the private key we found with C_FindObjects.
 * libp11 0.4.12 caches its key list per token: a re-enumeration adds new
 * objects but keeps entries for destroyed ones, so label and id alone could
 * pick a stale entry. We match the live object's modulus as well. */
static int libp11_private_key(struct keyprov *kp, CK_OBJECT_HANDLE priv, const char *label,
			      uint32_t version, EVP_PKEY **ret)
{
	_cleanup_(BN_freep) BIGNUM *want = NULL;
	PKCS11_KEY *keys = NULL;
	unsigned nkeys = 0;
	CK_BYTE id[4];
	int r;

	r = bn_from_attr(kp, priv, CKA_MODULUS, &want);
	if (r < 0)
		return r;
	if (PKCS11_enumerate_keys(kp->slot->token, &keys, &nkeys) < 0)
		return -VLT_E_HSM;

	version_id(version, id);
	for (unsigned i = 0; i < nkeys; i++) {
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
		_cleanup_(BN_freep) BIGNUM *have = NULL;
		PKCS11_KEY *k = &keys[i];

		if (!k->label || !streq(k->label, label) || k->id_len != sizeof(id) ||
		    memcmp(k->id, id, sizeof(id)) != 0)
			continue;
		pkey = PKCS11_get_private_key(k);      /* a new reference */
		if (!pkey)
			continue;                       /* stale entry */
		if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &have) <= 0 || BN_cmp(have, want) != 0)
			continue;
		*ret = TAKE_PTR(pkey);
		return 0;
	}
	set_detail("libp11 has no usable entry for key '%s' version %u", label, version);
	return -VLT_E_HSM;
}

/* Copies exactly KEYPROV_RK_LEN bytes out of a decryption buffer. */
static int rk_take(const struct secret *buf, size_t len, struct secret **ret)
{
	if (len != KEYPROV_RK_LEN) {
		log_debug("unwrapped %zu bytes, expected %d", len, KEYPROV_RK_LEN);
		return -VLT_E_HSM_UNWRAP;
	}
	return secret_from_bytes_guarded(buf->p, KEYPROV_RK_LEN, ret);
}

/* "oaep-sha256-host": OpenSSL 3 treats libp11's RSA key (which carries
 * libp11's RSA_METHOD) as a legacy "foreign" key, so EVP_PKEY_decrypt goes
 * through the legacy RSA pkey method: RSA_private_decrypt(RSA_NO_PADDING),
 * i.e. CKM_RSA_X_509 in the token, then RSA_padding_check_PKCS1_OAEP_mgf1()
 * in OpenSSL. libp11's own PKCS11_private_decrypt() does not do OAEP, and we
 * do not ask it to. Verified with libp11 0.4.12, OpenSSL 3.0 and SoftHSM2
 * 2.6.1 (tests/unit/test_keyprov.c). The padded block passes through
 * libp11's and OpenSSL's own buffers, which we cannot wipe from here. */
static int unwrap_host(struct keyprov *kp, struct job *job, CK_OBJECT_HANDLE priv)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *pctx = NULL;
	_cleanup_secret_ struct secret *buf = NULL;
	size_t outlen;
	int r;

	r = libp11_private_key(kp, priv, job->b.label, job->b.key_version, &pkey);
	if (r < 0)
		return r;
	r = secret_new((size_t)EVP_PKEY_get_size(pkey), &buf);
	if (r < 0)
		return r;
	pctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (!pctx)
		return -ENOMEM;
	if (EVP_PKEY_decrypt_init(pctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
		return -VLT_E_HSM_MECH;
	outlen = buf->cap;
	if (EVP_PKEY_decrypt(pctx, buf->p, &outlen, job->b.ct, job->b.ct_len) <= 0) {
		/* A token that refuses raw RSA (FIPS mode) needs "oaep-token";
		 * say so rather than blame the blob. */
		if (ssl_errors_drain("unwrap") == CKR_MECHANISM_INVALID)
			return -VLT_E_HSM_MECH;
		return -VLT_E_HSM_UNWRAP;
	}
	return rk_take(buf, outlen, &job->rk);
}

/* "oaep-token": CKM_RSA_PKCS_OAEP inside the token, for HSMs that refuse raw
 * RSA. No OAEP label (CKZ_DATA_SPECIFIED with empty source data). */
static int unwrap_token(struct keyprov *kp, struct job *job, CK_OBJECT_HANDLE priv)
{
	_cleanup_secret_ struct secret *buf = NULL;
	CK_RSA_PKCS_OAEP_PARAMS params = {
		.hashAlg = job->b.hash == KEYPROV_HASH_SHA1 ? CKM_SHA_1 : CKM_SHA256,
		.mgf = job->b.hash == KEYPROV_HASH_SHA1 ? CKG_MGF1_SHA1 : CKG_MGF1_SHA256,
		.source = CKZ_DATA_SPECIFIED,
		.pSourceData = NULL,
		.ulSourceDataLen = 0,
	};
	CK_MECHANISM mech = { CKM_RSA_PKCS_OAEP, &params, sizeof(params) };
	CK_ULONG outlen;
	CK_RV rv;
	int r;

	/* 512 bytes hold any result up to RSA-4096, so C_Decrypt never stops
	 * at CKR_BUFFER_TOO_SMALL, which would leave the operation active. */
	r = secret_new(RSA_BITS_MAX / 8, &buf);
	if (r < 0)
		return r;
	rv = kp->fl->C_DecryptInit(kp->sess, &mech, priv);
	if (rv != CKR_OK) {
		log_debug("C_DecryptInit(CKM_RSA_PKCS_OAEP, %s): 0x%lx",
			  keyprov_hash_name(job->b.hash), (unsigned long)rv);
		/* SoftHSM2 2.6.1 answers CKR_ARGUMENTS_BAD to any hash but
		 * SHA-1: the token lacks the mechanism as asked, which is
		 * not a wrong key or a damaged blob. */
		switch (rv) {
		case CKR_MECHANISM_INVALID:
		case CKR_MECHANISM_PARAM_INVALID:
		case CKR_ARGUMENTS_BAD:
			return -VLT_E_HSM_MECH;
		default:
			return -VLT_E_HSM_UNWRAP;
		}
	}
	outlen = buf->cap;
	rv = kp->fl->C_Decrypt(kp->sess, (CK_BYTE_PTR)job->b.ct, job->b.ct_len, buf->p, &outlen);
	if (rv != CKR_OK) {
		log_debug("C_Decrypt: 0x%lx", (unsigned long)rv);
		return -VLT_E_HSM_UNWRAP;
	}
	return rk_take(buf, outlen, &job->rk);
}

static int run_unwrap(struct keyprov *kp, struct job *job)
{
	CK_OBJECT_HANDLE priv;
	int r;

	r = find_object(kp, CKO_PRIVATE_KEY, job->b.label, job->b.key_version, &priv);
	if (r < 0)
		return r;
	if (job->b.mech == KEYPROV_MECH_OAEP_HOST)
		return unwrap_host(kp, job, priv);
	return unwrap_token(kp, job, priv);
}

static int run_test_attrs(struct keyprov *kp, struct job *job)
{
	struct keyprov_p11_test_attrs *a = &job->attrs;
	_cleanup_(BN_freep) BIGNUM *n = NULL;
	CK_OBJECT_HANDLE pub, priv;
	CK_ATTRIBUTE exp = { CKA_PRIVATE_EXPONENT, NULL, 0 };
	CK_RV rv;
	int r;

	if ((r = find_object(kp, CKO_PRIVATE_KEY, job->label, job->version, &priv)) < 0 ||
	    (r = find_object(kp, CKO_PUBLIC_KEY, job->label, job->version, &pub)) < 0)
		return r;
	if ((r = attr_bool(kp, priv, CKA_TOKEN, &a->priv_token)) < 0 ||
	    (r = attr_bool(kp, priv, CKA_PRIVATE, &a->priv_private)) < 0 ||
	    (r = attr_bool(kp, priv, CKA_SENSITIVE, &a->priv_sensitive)) < 0 ||
	    (r = attr_bool(kp, priv, CKA_EXTRACTABLE, &a->priv_extractable)) < 0 ||
	    (r = attr_bool(kp, priv, CKA_DECRYPT, &a->priv_decrypt)) < 0 ||
	    (r = attr_bool(kp, priv, CKA_SIGN, &a->priv_sign)) < 0 ||
	    (r = attr_bool(kp, priv, CKA_UNWRAP, &a->priv_unwrap)) < 0 ||
	    (r = attr_bool(kp, priv, CKA_ALWAYS_SENSITIVE, &a->priv_always_sensitive)) < 0 ||
	    (r = attr_bool(kp, priv, CKA_NEVER_EXTRACTABLE, &a->priv_never_extractable)) < 0 ||
	    (r = attr_bool(kp, pub, CKA_TOKEN, &a->pub_token)) < 0 ||
	    (r = attr_bool(kp, pub, CKA_ENCRYPT, &a->pub_encrypt)) < 0 ||
	    (r = attr_bool(kp, pub, CKA_VERIFY, &a->pub_verify)) < 0 ||
	    (r = bn_from_attr(kp, pub, CKA_MODULUS, &n)) < 0)
		return r;
	/* Length query only: a sensitive key answers CKR_ATTRIBUTE_SENSITIVE. */
	rv = kp->fl->C_GetAttributeValue(kp->sess, priv, &exp, 1);
	a->priv_exponent_readable = rv == CKR_OK && exp.ulValueLen != CK_UNAVAILABLE_INFORMATION;
	a->modulus_bits = (unsigned)BN_num_bits(n);
	return 0;
}

static int run_job(struct keyprov *kp, struct job *job)
{
	switch (job->op) {
	case JOB_OPEN:
		return run_open(kp, job);
	case JOB_CLOSE:
		session_teardown(kp);
		return 0;
	case JOB_GENERATE:
		return run_generate(kp, job);
	case JOB_FIND:
		return run_find(kp, job);
	case JOB_DESTROY:
		return run_destroy(kp, job);
	case JOB_PUBKEY:
		return run_pubkey(kp, job);
	case JOB_UNWRAP:
		return run_unwrap(kp, job);
	case JOB_TEST_ATTRS:
		return run_test_attrs(kp, job);
	}
	return -EINVAL;
}

/* ---- jobs and the worker loop ---- */

static void job_free(struct job *job)
{
	if (!job)
		return;
	secret_free(job->pin);
	secret_free(job->rk);
	EVP_PKEY_free(job->pubkey);
	free(job->blob);
	free(job);
}

static struct job *job_new(enum job_op op, const char *label, uint32_t version)
{
	struct job *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	job->op = op;
	job->refs = 1;                  /* the caller's */
	if (label)
		memcpy(job->label, label, strnlen(label, KEYPROV_LABEL_MAX));
	job->version = version;
	return job;
}

/* Drops one reference; the last one frees. */
static void job_unref(struct keyprov *kp, struct job *job)
{
	bool last;

	pthread_mutex_lock(&kp->mtx);
	last = --job->refs == 0;
	pthread_mutex_unlock(&kp->mtx);
	if (last)
		job_free(job);
}

/* Finishes a job under kp->mtx; returns true if the caller's free is ours. */
static bool job_finish_locked(struct keyprov *kp, struct job *job, int result)
{
	job->result = result;
	job->done = true;
	pthread_cond_broadcast(&kp->done_cv);
	return --job->refs == 0;
}

static void *worker_main(void *arg)
{
	struct keyprov *kp = arg;
	bool stop = false;

	while (!stop) {
		struct job *job;
		unsigned delay;
		bool poisoned, last;
		int r;

		pthread_mutex_lock(&kp->mtx);
		while (!kp->head && !kp->abandoned)
			pthread_cond_wait(&kp->work_cv, &kp->mtx);
		if (!kp->head) {                /* abandoned and idle */
			pthread_mutex_unlock(&kp->mtx);
			break;
		}
		job = kp->head;
		kp->head = job->next;
		if (!kp->head)
			kp->tail = NULL;
		delay = kp->delay_ms;
		pthread_mutex_unlock(&kp->mtx);

		if (delay > 0) {
			struct timespec ts = {
				.tv_sec = delay / 1000,
				.tv_nsec = (long)(delay % 1000) * 1000000L,
			};

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}

		pthread_mutex_lock(&kp->mtx);
		poisoned = kp->poisoned;
		pthread_mutex_unlock(&kp->mtx);

		/* After a timeout nothing touches the token again: the stuck
		 * call may still be inside the module. */
		last_detail[0] = '\0';
		r = poisoned ? -VLT_E_HSM_TIMEOUT : run_job(kp, job);
		if (r < 0)
			memcpy(job->detail, last_detail, sizeof(job->detail));
		(void)ssl_errors_drain(job_names[job->op]);
		if (r < 0)
			log_debug("%s: %s", job_names[job->op], vlt_strerror(r));

		pthread_mutex_lock(&kp->mtx);
		stop = job->op == JOB_CLOSE;
		last = job_finish_locked(kp, job, r);
		pthread_mutex_unlock(&kp->mtx);
		if (last)
			job_free(job);
	}

	/* Anything still queued will never run. */
	pthread_mutex_lock(&kp->mtx);
	kp->worker_gone = true;
	while (kp->head) {
		struct job *job = kp->head;

		kp->head = job->next;
		if (job_finish_locked(kp, job, -VLT_E_HSM))
			job_free(job);
	}
	kp->tail = NULL;
	pthread_mutex_unlock(&kp->mtx);
	ERR_clear_error();
	return NULL;
}

/* Queues job and waits for it, at most kp->timeout_ms. Returns the job's
 * result (outputs are then in job), or -VLT_E_HSM_TIMEOUT, after which the
 * job may still be running and the provider is poisoned. The caller still
 * owns one reference either way. */
static int call(struct keyprov *kp, struct job *job)
{
	struct timespec deadline;
	int r;

	last_detail[0] = '\0';
	if (getpid() != kp->pid) {
		/* fork() copies neither the worker thread nor a usable module
		 * state (libp11 0.4.12 even loses its locking there). */
		log_debug("PKCS#11 provider used in a forked child");
		return -VLT_E_HSM;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += kp->timeout_ms / 1000;
	deadline.tv_nsec += (long)(kp->timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&kp->mtx);
	if (kp->poisoned) {
		pthread_mutex_unlock(&kp->mtx);
		return -VLT_E_HSM_TIMEOUT;
	}
	if (kp->worker_gone) {
		pthread_mutex_unlock(&kp->mtx);
		return -VLT_E_HSM;
	}
	job->refs++;                    /* the worker's */
	if (kp->tail)
		kp->tail->next = job;
	else
		kp->head = job;
	kp->tail = job;
	pthread_cond_signal(&kp->work_cv);

	while (!job->done && !kp->poisoned)
		if (pthread_cond_timedwait(&kp->done_cv, &kp->mtx, &deadline) == ETIMEDOUT)
			break;
	if (job->done) {
		r = job->result;
		if (r < 0 && job->detail[0])
			memcpy(last_detail, job->detail, sizeof(last_detail));
	} else {
		/* Our job (or one ahead of it) is stuck. From now on the
		 * provider only fails; wake the other waiters so they fail
		 * fast too. The worker keeps its reference to job. */
		if (!kp->poisoned)
			set_detail("%s: no answer from the token within %u ms", job_names[job->op], kp->timeout_ms);
		kp->poisoned = true;
		pthread_cond_broadcast(&kp->done_cv);
		r = -VLT_E_HSM_TIMEOUT;
	}
	pthread_mutex_unlock(&kp->mtx);
	return r;
}

/* ---- public interface ---- */

static void provider_free(struct keyprov *kp)
{
	pthread_mutex_destroy(&kp->mtx);
	pthread_cond_destroy(&kp->work_cv);
	pthread_cond_destroy(&kp->done_cv);
	free(kp->module_path);
	free(kp->token_label);
	free(kp);
}

static int provider_new(const struct keyprov_config *cfg, struct keyprov **ret)
{
	struct keyprov *kp;
	pthread_condattr_t ca;
	sigset_t all, old;
	int r;

	kp = calloc(1, sizeof(*kp));
	if (!kp)
		return -ENOMEM;
	kp->module_path = strdup(cfg->module_path);
	kp->token_label = strdup(cfg->token_label);
	if (!kp->module_path || !kp->token_label) {
		free(kp->module_path);
		free(kp->token_label);
		free(kp);
		return -ENOMEM;
	}
	kp->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	kp->pid = getpid();

	pthread_mutex_init(&kp->mtx, NULL);
	pthread_condattr_init(&ca);
	/* Wall-clock jumps must neither stretch nor cut a timeout. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&kp->done_cv, &ca);
	pthread_cond_init(&kp->work_cv, &ca);
	pthread_condattr_destroy(&ca);

	/* Signals belong to the daemon's main thread, not to a thread that may
	 * sit inside vendor code. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&kp->worker, NULL, worker_main, kp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		provider_free(kp);
		return r;
	}
	*ret = kp;
	return 0;
}

int keyprov_open(const struct keyprov_config *cfg, struct keyprov **ret)
{
	_cleanup_secret_ struct secret *pin = NULL;
	struct keyprov *kp;
	struct job *job;
	bool has_file, has_env;
	int r;

	last_detail[0] = '\0';
	if (!cfg || !ret || !cfg->module_path || !cfg->token_label || !*cfg->token_label)
		return -EINVAL;
	has_file = cfg->pin_file && *cfg->pin_file;
	has_env = cfg->pin_env && *cfg->pin_env;
	if (has_file == has_env)
		return -EINVAL;         /* exactly one PIN source ("" counts as unset) */
	if (cfg->module_path[0] != '/') {
		/* A bare name would go through the library search path. */
		set_detail("PKCS#11 module path '%s' is not absolute", cfg->module_path);
		return -VLT_E_HSM_MODULE;
	}
	r = secret_library_init();
	if (r < 0)
		return r;

	r = has_file ? p11_pin_from_file(cfg->pin_file, &pin) : p11_pin_from_env(cfg->pin_env, &pin);
	if (r < 0)
		return r;

	r = provider_new(cfg, &kp);
	if (r < 0)
		return r;
	job = job_new(JOB_OPEN, NULL, 0);
	if (!job) {
		keyprov_close(kp);
		return -ENOMEM;
	}
	job->pin = TAKE_PTR(pin);
	r = call(kp, job);
	job_unref(kp, job);
	if (r < 0) {
		/* Tears down whatever the worker got to (or, after a
		 * timeout, abandons it). */
		keyprov_close(kp);
		return r;
	}
	*ret = kp;
	return 0;
}

void keyprov_close(struct keyprov *kp)
{
	char saved[sizeof(last_detail)];
	struct job *job;
	int r;

	if (!kp)
		return;
	if (getpid() != kp->pid)
		return;         /* forked child: the worker and the module are the parent's */

	/* Closing after a failure must not lose what the failure was about. */
	memcpy(saved, last_detail, sizeof(saved));
	job = job_new(JOB_CLOSE, NULL, 0);
	r = job ? call(kp, job) : -ENOMEM;
	if (job)
		job_unref(kp, job);
	memcpy(last_detail, saved, sizeof(last_detail));
	if (r == -VLT_E_HSM_TIMEOUT || r == -ENOMEM) {
		/* A call is stuck inside the module (or we could not even ask
		 * the worker to stop). Joining could hang forever and
		 * C_Finalize/dlclose under a running call is undefined, so
		 * the worker is detached, the module stays loaded and the
		 * provider is leaked on purpose into the graveyard. The
		 * worker exits by itself if the call ever returns. */
		pthread_mutex_lock(&kp->mtx);
		kp->abandoned = true;
		kp->poisoned = true;
		pthread_cond_signal(&kp->work_cv);
		pthread_mutex_unlock(&kp->mtx);
		(void)pthread_detach(kp->worker);
		pthread_mutex_lock(&graveyard_mtx);
		kp->grave_next = graveyard;
		graveyard = kp;
		pthread_mutex_unlock(&graveyard_mtx);
		log_debug("PKCS#11 provider abandoned after a timeout; module left loaded");
		return;
	}
	(void)pthread_join(kp->worker, NULL);
	provider_free(kp);
}

/* Runs a job that needs only (label, version). */
static int call_simple(struct keyprov *kp, enum job_op op, const char *label, uint32_t version)
{
	struct job *job;
	int r;

	if (!kp)
		return -EINVAL;
	r = label_check(label);
	if (r < 0)
		return r;
	job = job_new(op, label, version);
	if (!job)
		return -ENOMEM;
	r = call(kp, job);
	job_unref(kp, job);
	return r;
}

int keyprov_generate(struct keyprov *kp, const char *label, uint32_t version)
{
	return call_simple(kp, JOB_GENERATE, label, version);
}

int keyprov_find(struct keyprov *kp, const char *label, uint32_t version)
{
	return call_simple(kp, JOB_FIND, label, version);
}

int keyprov_destroy(struct keyprov *kp, const char *label, uint32_t version)
{
	return call_simple(kp, JOB_DESTROY, label, version);
}

int keyprov_wrap(struct keyprov *kp, const char *label, uint32_t version, enum keyprov_mech mech,
		 enum keyprov_hash hash, const struct secret *rk, uint8_t **ret_blob, size_t *ret_len)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *pctx = NULL;
	_cleanup_free_ uint8_t *ct = NULL;
	struct keyprov_blob b = { .mech = (uint8_t)mech, .hash = (uint8_t)hash, .key_version = version };
	struct job *job;
	size_t ct_len;
	int r;

	if (!kp || !rk || !rk->p || rk->len != KEYPROV_RK_LEN || !ret_blob || !ret_len ||
	    !mech_hash_valid(mech, hash))
		return -EINVAL;
	r = label_check(label);
	if (r < 0)
		return r;

	job = job_new(JOB_PUBKEY, label, version);
	if (!job)
		return -ENOMEM;
	r = call(kp, job);
	if (r == 0)
		pkey = TAKE_PTR(job->pubkey);
	job_unref(kp, job);
	if (r < 0)
		return r;

	/* Plain OpenSSL from here on: the public key has no token behind it. */
	pctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (!pctx)
		return -ENOMEM;
	ct_len = (size_t)EVP_PKEY_get_size(pkey);
	ct = malloc(ct_len);
	if (!ct)
		return -ENOMEM;
	if (EVP_PKEY_encrypt_init(pctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, oaep_md(hash)) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, oaep_md(hash)) <= 0 ||
	    EVP_PKEY_encrypt(pctx, ct, &ct_len, rk->p, rk->len) <= 0) {
		(void)ssl_errors_drain("wrap");
		return -VLT_E_HSM;
	}

	memcpy(b.label, label, strlen(label) + 1);
	b.ct = ct;
	b.ct_len = ct_len;
	return keyprov_blob_build(&b, ret_blob, ret_len);
}

int keyprov_unwrap(struct keyprov *kp, const uint8_t *blob, size_t len, struct secret **ret_rk)
{
	struct keyprov_blob parsed;
	struct job *job;
	int r;

	if (!kp || !blob || !ret_rk)
		return -EINVAL;
	/* Validate before touching the token. */
	r = keyprov_blob_parse(blob, len, &parsed);
	if (r < 0)
		return r;

	job = job_new(JOB_UNWRAP, NULL, 0);
	if (!job)
		return -ENOMEM;
	/* The worker reads our own copy: the caller's buffer may be gone if
	 * we time out. */
	job->blob = malloc(len);
	if (!job->blob) {
		job_unref(kp, job);
		return -ENOMEM;
	}
	memcpy(job->blob, blob, len);
	r = keyprov_blob_parse(job->blob, len, &job->b);
	if (r == 0)
		r = call(kp, job);
	if (r == 0)
		*ret_rk = TAKE_PTR(job->rk);
	job_unref(kp, job);
	return r;
}

void keyprov_p11_test_set_delay_ms(struct keyprov *kp, unsigned ms)
{
	pthread_mutex_lock(&kp->mtx);
	kp->delay_ms = ms;
	pthread_mutex_unlock(&kp->mtx);
}

int keyprov_p11_test_key_attrs(struct keyprov *kp, const char *label, uint32_t version,
			       struct keyprov_p11_test_attrs *ret)
{
	struct job *job;
	int r;

	if (!kp || !ret)
		return -EINVAL;
	r = label_check(label);
	if (r < 0)
		return r;
	job = job_new(JOB_TEST_ATTRS, label, version);
	if (!job)
		return -ENOMEM;
	r = call(kp, job);
	if (r == 0)
		*ret = job->attrs;
	job_unref(kp, job);
	return r;
}
