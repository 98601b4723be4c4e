/* vaultd/core/dev.h: "vaultd --dev DIR", the self-contained try-it-out vault.
 * Creates DIR (0700) with a SoftHSM2 token of its own (DIR/tokens,
 * DIR/softhsm2.conf, exported as SOFTHSM2_CONF), a random token PIN in
 * DIR/hsm.pin, a config naming the socket DIR/vaultd.sock and the database
 * DIR/vault.db, and the admin's passphrase in DIR/admin.passphrase so a second
 * run can unlock the same vault. All files 0600. Never for production: the
 * passphrase sits next to the database it protects.
 * Main thread, before any other thread (it runs softhsm2-util).
 */
#pragma once
#include <stdbool.h>
#include "common/secret.h"

#define DEV_ADMIN "admin"

struct dev_vault {
	char *dir;                      /* absolute */
	char *config_text;              /* for config_load_string() */
	char *config_name;              /* "DIR/vaultd.conf (generated)" for messages */
	struct secret *passphrase;      /* the admin's */
	struct secret *totp_secret;     /* the admin's TOTP secret, base32, NUL-terminated; NULL before init */
	bool created;                   /* true on the first run */
};

int dev_prepare(const char *dir, struct dev_vault *ret);
/* First run: keeps the admin's TOTP secret (DIR/admin.totp) and recovery
 * codes (DIR/admin.recovery, one per line), 0600, and loads the secret. */
#include <jansson.h>
int dev_save_enrolment(struct dev_vault *d, const char *totp_b32, const json_t *recovery_codes);
void dev_vault_clear(struct dev_vault *d);
