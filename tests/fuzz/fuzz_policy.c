/*
 * Fuzz target: the policy language front end and compiler. Any input must
 * give a program or diagnostics, never a crash, a leak or a hang; a program
 * that compiles must run a request to a verdict.
 *
 *   make fuzz        (clang's libFuzzer; see tests/fuzz/run)
 */
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/runtime.h"
#include "engine/compile.h"
#include "engine/vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size);
	struct diags d;
	diags_init(&d);
	struct program *p = compile_string("fuzz.conf", text, &d);
	struct strbuf b;
	sb_init(&b);
	for (size_t i = 0; i < d.n; i++)
		diag_format(&d, &d.v[i], &b);
	if (p) {
		static const char req[] = "client_address=192.0.2.1\nclient_name=x.example\n"
					  "sender=a@b.example\nrecipient=c@d.example\nsize=100\n\n";
		/* one runtime for the whole run: its memory store holds greylist
		 * and rate state across inputs, as a daemon's would */
		static struct event_base *base;
		static struct runtime *rt;
		if (!rt) {
			base = event_base_new();
			rt = runtime_new(base);
		}
		struct request *r = req_new();
		const char *err;
		if (req_parse(r, req, sizeof req - 1, &err)) {
			req_set_clock(r, true, 1700000000);
			struct vm *vm = vm_new(rt, p, r, NULL, NULL);
			if (vm_run(vm) == VM_DONE) {
				vm_reply(vm, &b);
				vm_log_line(vm, &b);
			}
			vm_free(vm);
		}
		req_free(r);
		program_unref(p);
	}
	sb_free(&b);
	diags_free(&d);
	free(text);
	return 0;
}
