package verifier

import "github.com/latchkeyhq/latchkey/shared/apikey"

// Limiter applies a rate class to one key. Take reports whether a request may proceed now and,
// when not, how many whole seconds until it could. now is in Unix nanoseconds.
type Limiter interface {
	Take(class int, perSecond float64, burst int, key apikey.ID, now int64) (ok bool, retryAfter int64)
}

// DefaultLimiterSize bounds the buckets a BucketLimiter keeps.
const DefaultLimiterSize = 65536

type bucketKey struct {
	class int
	key   apikey.ID
}

type bucket struct {
	tokens float64
	last   int64
}

// BucketLimiter is a token bucket per (rate class, key), local to its owner: per Engine by
// default, or shared by a host that wraps it in a lock. It keeps at most its size in buckets;
// past that it forgets an arbitrary bucket, which can only let a forgotten key burst again,
// never deny a request that should pass.
type BucketLimiter struct {
	buckets map[bucketKey]*bucket
	size    int
}

// NewBucketLimiter returns a limiter keeping at most size buckets (0 means DefaultLimiterSize).
func NewBucketLimiter(size int) *BucketLimiter {
	if size <= 0 {
		size = DefaultLimiterSize
	}
	return &BucketLimiter{buckets: make(map[bucketKey]*bucket), size: size}
}

// Take implements Limiter.
func (l *BucketLimiter) Take(class int, perSecond float64, burst int, key apikey.ID, now int64) (bool, int64) {
	k := bucketKey{class, key}
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.size {
			for old := range l.buckets {
				delete(l.buckets, old)
				break
			}
		}
		b = &bucket{tokens: float64(burst), last: now}
		l.buckets[k] = b
	}
	if now > b.last {
		b.tokens += float64(now-b.last) / 1e9 * perSecond
		if b.tokens > float64(burst) {
			b.tokens = float64(burst)
		}
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if perSecond <= 0 {
		return false, 60
	}
	wait := int64((1-b.tokens)/perSecond) + 1
	return false, wait
}
