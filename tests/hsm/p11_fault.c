/* tests/hsm/p11_fault.c: a PKCS#11 module for the HSM fault tests (issue 15,
 * point 5). It forwards every call to the real module named by
 * $VAULTD_FAULT_P11_MODULE (SoftHSM2) and, while a file exists in
 * $VAULTD_FAULT_P11_DIR, misbehaves the way a real HSM does:
 *
 *   hang   C_Decrypt and C_DecryptInit block until the file is removed: a
 *          hung HSM (a network HSM behind a dead link, a wedged TPM);
 *   gone   every call that needs the token answers CKR_DEVICE_REMOVED: the
 *          USB token was pulled, the partition went away.
 *
 * Test code only: never installed, built only with the tests.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST real;           /* the real module's list, copied */
static CK_FUNCTION_LIST ours;           /* the same with the faulty entries */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static CK_RV load_rv = CKR_GENERAL_ERROR;

static int flag(const char *name)
{
	const char *dir = getenv("VAULTD_FAULT_P11_DIR");
	char path[PATH_MAX];

	if (!dir)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void hang_while_flagged(void)
{
	while (flag("hang"))
		usleep(20 * 1000);
}

#define GONE_OR(call) (flag("gone") ? CKR_DEVICE_REMOVED : (call))

static CK_RV f_GetTokenInfo(CK_SLOT_ID s, CK_TOKEN_INFO_PTR i)
{
	return GONE_OR(real.C_GetTokenInfo(s, i));
}

static CK_RV f_OpenSession(CK_SLOT_ID s, CK_FLAGS fl, CK_VOID_PTR a, CK_NOTIFY n, CK_SESSION_HANDLE_PTR h)
{
	return GONE_OR(real.C_OpenSession(s, fl, a, n, h));
}

static CK_RV f_Login(CK_SESSION_HANDLE h, CK_USER_TYPE t, CK_UTF8CHAR_PTR p, CK_ULONG n)
{
	return GONE_OR(real.C_Login(h, t, p, n));
}

static CK_RV f_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	return GONE_OR(real.C_FindObjectsInit(h, t, n));
}

static CK_RV f_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	return GONE_OR(real.C_GetAttributeValue(h, o, t, n));
}

static CK_RV f_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	hang_while_flagged();
	return GONE_OR(real.C_DecryptInit(h, m, k));
}

static CK_RV f_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR outn)
{
	hang_while_flagged();
	return GONE_OR(real.C_Decrypt(h, in, n, out, outn));
}

static CK_RV f_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	return GONE_OR(real.C_EncryptInit(h, m, k));
}

static CK_RV f_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR outn)
{
	return GONE_OR(real.C_Encrypt(h, in, n, out, outn));
}

static CK_RV f_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub, CK_ULONG npub,
			       CK_ATTRIBUTE_PTR priv, CK_ULONG npriv, CK_OBJECT_HANDLE_PTR hpub,
			       CK_OBJECT_HANDLE_PTR hpriv)
{
	return GONE_OR(real.C_GenerateKeyPair(h, m, pub, npub, priv, npriv, hpub, hpriv));
}

static CK_RV f_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o)
{
	return GONE_OR(real.C_DestroyObject(h, o));
}

static CK_RV f_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	return GONE_OR(real.C_SetAttributeValue(h, o, t, n));
}

static void load(void)
{
	const char *path = getenv("VAULTD_FAULT_P11_MODULE");
	CK_C_GetFunctionList get;
	CK_FUNCTION_LIST_PTR fl;
	void *h;

	if (!path || !(h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
		fprintf(stderr, "p11_fault: cannot load $VAULTD_FAULT_P11_MODULE '%s': %s\n", path ? path : "",
			path ? dlerror() : "not set");
		return;
	}
	get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
	if (!get || get(&fl) != CKR_OK)
		return;
	real = *fl;
	ours = real;
	ours.C_GetTokenInfo = f_GetTokenInfo;
	ours.C_OpenSession = f_OpenSession;
	ours.C_Login = f_Login;
	ours.C_FindObjectsInit = f_FindObjectsInit;
	ours.C_GetAttributeValue = f_GetAttributeValue;
	ours.C_SetAttributeValue = f_SetAttributeValue;
	ours.C_DecryptInit = f_DecryptInit;
	ours.C_Decrypt = f_Decrypt;
	ours.C_EncryptInit = f_EncryptInit;
	ours.C_Encrypt = f_Encrypt;
	ours.C_GenerateKeyPair = f_GenerateKeyPair;
	ours.C_DestroyObject = f_DestroyObject;
	/* The real module stays loaded for the life of the process: its
	 * functions are what ours call. */
	load_rv = CKR_OK;
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ret)
{
	pthread_once(&once, load);
	if (load_rv != CKR_OK)
		return load_rv;
	*ret = &ours;
	return CKR_OK;
}
