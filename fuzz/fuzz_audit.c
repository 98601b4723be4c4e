/* fuzz/fuzz_audit.c: vaultd/audit/audit.c, the audit anchor
 * (meta.audit_head) and retention checkpoint parsers. Both are strict: no
 * trailing bytes, bounded decimals, exact hex. */
#include <stdint.h>
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>
#include "vaultd/audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_anchor a;
	struct audit_checkpoint c;
	char *s;

	s = fuzz_cstr(data, size, 4096);
	if (!s)
		return 0;
	if (audit_anchor_parse(s, &a) == 0 && (a.version < 1 || a.version > 2 || a.id < 0 || a.first < 0))
		abort();
	if (audit_checkpoint_parse(s, &c) == 0 && (c.first < 0 || c.through < c.first))
		abort();
	free(s);
	return 0;
}
