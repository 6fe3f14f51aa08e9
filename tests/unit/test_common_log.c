#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "common/log.h"
static void t(void **s){(void)s; enum jp_log_level l; assert_int_equal(jp_log_level_parse("debug",&l),0); assert_int_equal(l,JP_LOG_DEBUG); assert_int_equal(jp_log_level_parse("loud",&l),-1);}
int main(void){const struct CMUnitTest ts[]={cmocka_unit_test(t)}; return cmocka_run_group_tests(ts,NULL,NULL);}
