/* pkcs11/keyprov_p11_test.h: test-only hooks into the PKCS#11 key provider.
 * Never included by production code. Free of PKCS#11 and libp11 types so a
 * test needs neither header.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "common/keyprov.h"

/* Makes the worker thread sleep ms milliseconds before it runs each job, so a
 * test can drive a call past cfg->timeout_ms. 0 turns the delay off. */
void keyprov_p11_test_set_delay_ms(struct keyprov *kp, unsigned ms);

/* Attributes of the key pair (label, version), read through the module's
 * function list. */
struct keyprov_p11_test_attrs {
	bool priv_token, priv_private, priv_sensitive, priv_extractable;
	bool priv_decrypt, priv_sign, priv_unwrap;
	bool priv_always_sensitive, priv_never_extractable;
	bool priv_exponent_readable;    /* CKA_PRIVATE_EXPONENT came back with a value */
	bool pub_token, pub_encrypt, pub_verify;
	unsigned modulus_bits;          /* from the public key's CKA_MODULUS */
};
/* 0, -VLT_E_HSM_KEY_NOT_FOUND, -VLT_E_HSM, -VLT_E_HSM_TIMEOUT. */
int keyprov_p11_test_key_attrs(struct keyprov *kp, const char *label, uint32_t version,
			       struct keyprov_p11_test_attrs *ret);

/* The mapping of a C_Login return value (a CKR_* code) to an err.h code, as
 * keyprov_open() applies it. 0 for CKR_OK and CKR_USER_ALREADY_LOGGED_IN. */
int keyprov_p11_test_login_error(unsigned long ckr);
