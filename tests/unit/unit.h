/* Common includes for cmocka unit tests. */
#ifndef KITE_TESTS_UNIT_H
#define KITE_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#endif
