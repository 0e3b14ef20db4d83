// Package limits holds every size and count limit of the verification core in one
// place, so that a reviewer can see at a glance what an attacker can make the core
// parse, and so that the control plane refuses to produce what the edge would refuse.
package limits

const (
	// MaxKeyBytes bounds an API key string, prefix included.
	MaxKeyBytes = 128
	// MaxPrefixBytes bounds a key type's prefix.
	MaxPrefixBytes = 32

	// MaxTokenBytes bounds a compact JWS (client token) as received.
	MaxTokenBytes = 8192
	// MaxJSONDepth bounds nesting inside a token's header or claims.
	MaxJSONDepth = 8
	// MaxJSONMembers bounds the members of one JSON object in a token, which keeps
	// duplicate-name detection cheap and allocation-free.
	MaxJSONMembers = 32
	// MaxAudiences bounds the entries of an "aud" array.
	MaxAudiences = 8
	// MaxClaimBytes bounds one string claim (iss, sub, org, jti, scope, ...).
	MaxClaimBytes = 1024

	// DefaultLeewaySeconds is the clock skew tolerated on exp, nbf and iat when a
	// realm says nothing; MaxLeewaySeconds is the most a realm may configure.
	DefaultLeewaySeconds = 30
	MaxLeewaySeconds     = 300
	// DefaultTokenTTLCapSeconds is the longest a client token may live when a realm
	// says nothing.
	DefaultTokenTTLCapSeconds = 3600

	// MaxScopes is the number of distinct scope names a realm may define: a key's
	// scopes are a 64-bit mask over them, and the all-ones mask is reserved for "*".
	MaxScopes = 63
	// MaxScopeBytes bounds one scope name.
	MaxScopeBytes = 64
	// MaxKeyTypes is the number of key types in a realm (a key type is one byte in
	// the key table).
	MaxKeyTypes = 255
	// MaxRoutes bounds a realm's route table.
	MaxRoutes = 4096
	// MaxPathSegments bounds the segments of a route pattern and of a request path
	// the router will look at.
	MaxPathSegments = 32
	// MaxRequestPathBytes bounds a request path the core will route.
	MaxRequestPathBytes = 4096
	// MaxRequestHeaders bounds the headers passed to a decision.
	MaxRequestHeaders = 32
	// MaxHeaderValueBytes bounds one header value passed to a decision.
	MaxHeaderValueBytes = 8192
	// MaxErrorBodyBytes bounds a rendered error body template.
	MaxErrorBodyBytes = 4096
	// MaxIDBytes bounds org ids, agent ids, session ids, signing key ids and realm names.
	MaxIDBytes = 255
	// MaxAgentsPerKey bounds the agents one key may act for.
	MaxAgentsPerKey = 1024

	// MaxSnapshotObjectBytes bounds one snapshot object (a shard or the meta object).
	MaxSnapshotObjectBytes = 256 << 20
	// MaxManifestBytes bounds a manifest.
	MaxManifestBytes = 64 << 10
	// MaxManifestObjects bounds the objects a manifest names.
	MaxManifestObjects = 300
	// MaxShardBits bounds key-table sharding: at most 2^MaxShardBits shards.
	MaxShardBits = 8
	// MaxSnapshotObjectNameBytes bounds an object name in a manifest (names are also file
	// names and object-storage keys, so they are short and drawn from [A-Za-z0-9._-]).
	MaxSnapshotObjectNameBytes = 128
	// MaxSigningKeys bounds a realm's published JWT public keys.
	MaxSigningKeys = 64
	// MaxPolicyBytes bounds an encoded compiled policy.
	MaxPolicyBytes = 1 << 20

	// MaxTokenTTLSeconds is the largest client-token lifetime cap a realm may configure.
	MaxTokenTTLSeconds = 86400
	// MaxCredentialSources bounds the places a policy looks for a credential.
	MaxCredentialSources = 8
	// MaxRouteMethods bounds the methods one route lists.
	MaxRouteMethods = 16
	// MaxErrorHeaders bounds the headers one error rendering adds.
	MaxErrorHeaders = 16
	// MaxErrorBodyDepth bounds nesting in an error body template.
	MaxErrorBodyDepth = 16
	// MaxRateBurst and MaxRatePerSecond bound a rate class's token bucket.
	MaxRateBurst     = 1 << 20
	MaxRatePerSecond = 1 << 20

	// MaxClockSkewSeconds is how far in the future a manifest's issue time may lie before it
	// is refused (clocks of publisher and edge disagree by at most this much).
	MaxClockSkewSeconds = 300
)
