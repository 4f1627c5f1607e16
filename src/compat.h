/*
 * compat.h
 *		Differences between PostgreSQL server versions, kept in one place.
 *
 * jwt needs PostgreSQL 15 or later (the key table's UNIQUE NULLS NOT
 * DISTINCT, MarkGUCPrefixReserved).  Built and tested on 15; 16 compiles
 * behind the guards below but is not tested (no Debian package has it).
 */
#ifndef JWT_COMPAT_H
#define JWT_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 150000
#error "jwt needs PostgreSQL 15 or later"
#endif

/* InitMaterializedSRF() was named SetSingleFuncCall() in 15.0 */
#if PG_VERSION_NUM < 150001
#define InitMaterializedSRF(fcinfo, flags)	SetSingleFuncCall(fcinfo, flags)
#endif

/*
 * Whether a role may SET ROLE to another.  From 16 a grant may give
 * membership without SET (GRANT ... WITH SET FALSE): ask for SET itself, as
 * SET ROLE does.
 */
#if PG_VERSION_NUM >= 160000
#define jwt_member_can_set_role(member, role)	member_can_set_role(member, role)
#else
#define jwt_member_can_set_role(member, role)	is_member_of_role(member, role)
#endif

/*
 * RelationGetPrimaryKeyIndex() takes deferrable_ok from 18 on; the
 * revocation tables' primary keys are not deferrable.
 */
#if PG_VERSION_NUM >= 180000
#define jwt_primary_key_index(rel)	RelationGetPrimaryKeyIndex(rel, false)
#else
#define jwt_primary_key_index(rel)	RelationGetPrimaryKeyIndex(rel)
#endif

#endif							/* JWT_COMPAT_H */
