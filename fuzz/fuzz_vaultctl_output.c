/* fuzz/fuzz_vaultctl_output.c: what vaultctl makes of a server's answer
 * before it reaches a terminal (vaultctl/output.c): the terminal escaping of
 * any bytes, and a JSON answer parsed and printed as a table, as key/value
 * text and as JSON. Property: the escaped text is valid UTF-8 holding no
 * control character (C0, DEL, C1) and no bidi control, whatever came in. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz/fuzz.h"
#include "common/json.h"
#include "vaultctl/output.h"

static FILE *null_out;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	json_secure_init();             /* as vaultctl's client_init() does */
	null_out = fopen("/dev/null", "w");
	/* print_json() and the table write to stdout: throw it away. */
	if (!null_out || !freopen("/dev/null", "w", stdout))
		abort();
	return 0;
}

static void check_clean(const char *e)
{
	const unsigned char *p = (const unsigned char *)e;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			abort();
		if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			abort();        /* C1 */
		if (*p == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae)
			abort();        /* bidi embedding/override */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *j, *v;
	const char *key;
	char *e;

	if (size > 65536)
		return 0;
	e = out_escape((const char *)data, size, 0);
	if (e) {
		check_clean(e);
		(void)out_width(e);
		free(e);
	}
	out_safe(null_out, (const char *)data, size, OUT_KEEP_NEWLINE);
	j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
	if (!j)
		return 0;
	print_json(j);
	print_json_line(j);
	if (json_is_object(j)) {
		static const char *const head[] = { "KEY", "VALUE" };
		struct table *t = table_new(2, head);

		json_object_foreach(j, key, v) {
			char *text = json_text(v);
			const char *row[] = { key, text ? text : "-" };

			if (t)
				table_add(t, row);
			free(text);
		}
		if (t)
			table_print_free(t);
	}
	json_decref(j);
	return 0;
}
