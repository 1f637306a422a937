// Small LDAP helpers for scripts and tests; the implementations live in src/shared/ldap/escape.ts
// so the prep tooling, the sync engine and the scripts share one copy.
export { baseDnOf, escapeFilterValue, escapeRdnValue, guidFromBytes, guidToBytes } from '../../src/shared/ldap/escape.ts';
