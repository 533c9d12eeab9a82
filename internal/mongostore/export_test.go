package mongostore

// What the tests of package mongostore_test check against the server:
// the filter a member's lookup by login sends, and the login's indexes.
var (
	LoginFilter      = loginFilter
	LoginIndex       = loginIndex
	LegacyLoginIndex = legacyLoginIndex
)
