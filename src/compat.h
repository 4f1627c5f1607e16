/*
 * compat.h
 *		Differences between PostgreSQL server versions, kept in one place.
 *
 * Built and tested on 15; the guards below cover 13 to 17.
 */
#ifndef JWT_COMPAT_H
#define JWT_COMPAT_H

#include "postgres.h"

/*
 * A background worker may connect as a role that cannot log in from 17 on;
 * before, such a worker fails to start its connection (and jwt_refresh
 * then fails closed, see revocation.c).
 */
#if PG_VERSION_NUM >= 170000
#define JWT_BGW_CONNECT_FLAGS	BGWORKER_BYPASS_ROLELOGINCHECK
#else
#define JWT_BGW_CONNECT_FLAGS	0
#endif

/* GUC prefixes are reserved with MarkGUCPrefixReserved from 15 on */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix)	EmitWarningsOnPlaceholders(prefix)
#endif

/* numeric infinities and int64_to_numeric() arrived in 14 */
#if PG_VERSION_NUM < 140000
#define numeric_is_inf(n)	false
#define int64_to_numeric(v) \
	DatumGetNumeric(DirectFunctionCall1(int8_numeric, Int64GetDatum(v)))
#endif

#endif							/* JWT_COMPAT_H */
