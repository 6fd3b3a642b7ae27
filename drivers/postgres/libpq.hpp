#pragma once
// libpq, loaded when the first PostgreSQL database is opened (dlopen("libpq.so.5")) rather than
// linked. A program that links dbstep but opens only SQLite databases, as most `dbstep` runs
// do, never loads libpq and the thirty libraries it pulls in (Kerberos, LDAP, SASL, GnuTLS ...):
// relocating them was a quarter of an up-to-date `dbstep migrate all` (bench/README.md).
//
// Call libpq as pq().PQexec(...): the functions are libpq's own, with their own names and
// types (libpq-fe.h), reached through pointers.

#include <libpq-fe.h>

namespace dbstep::drivers {

// Every libpq function the PostgreSQL driver calls.
#define DBSTEP_LIBPQ_FUNCTIONS(X)                                                               \
  X(PQcancel) X(PQclear) X(PQcmdTuples) X(PQconndefaults) X(PQconnectdbParams)                \
  X(PQconninfoFree) X(PQconsumeInput) X(PQenterPipelineMode) X(PQerrorMessage) X(PQexec)       \
  X(PQexecParams) X(PQfreeCancel) X(PQgetCancel) X(PQbackendPID)                               \
  X(PQexitPipelineMode) X(PQfinish) X(PQflush) X(PQfreemem) X(PQgetCopyData) X(PQgetResult)   \
  X(PQgetisnull) X(PQgetlength) X(PQgetvalue) X(PQnfields) X(PQntuples) X(PQpipelineSync)    \
  X(PQputCopyEnd) X(PQresultErrorField) X(PQresultErrorMessage) X(PQresultStatus)              \
  X(PQsendQueryParams) X(PQsetNoticeProcessor) X(PQsetnonblocking) X(PQsocket) X(PQstatus)     \
  X(PQtransactionStatus)

struct Libpq {
#define DBSTEP_LIBPQ_POINTER(name) decltype(&::name) name = nullptr;
  DBSTEP_LIBPQ_FUNCTIONS(DBSTEP_LIBPQ_POINTER)
#undef DBSTEP_LIBPQ_POINTER
};

// libpq, loaded on the first call (thread-safe). Throws Error(kDatabase) saying which library
// could not be loaded and why (e.g. "install Debian's libpq5"); the next call tries again.
const Libpq& pq();

}  // namespace dbstep::drivers
