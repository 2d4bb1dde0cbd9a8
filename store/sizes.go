package store

import (
	bolt "go.etcd.io/bbolt"
)

// BucketSize is how many records a bucket holds and how large they are.
type BucketSize struct {
	// Bucket is the bucket's name ("states", "outbox", ...).
	Bucket string
	// Records is the number of keys; KeyBytes and ValueBytes their total
	// sizes.
	Records, KeyBytes, ValueBytes int
}

// RecordSizes returns the size of every bucket, in the order of the
// layout (see the package doc). It reads every key, so it costs a scan of
// the file: it is for capacity planning and the load command, which
// replays records of the sizes it finds against bbolt alone to measure
// the commit ceiling the store is read against.
func (s *Store) RecordSizes() ([]BucketSize, error) {
	var out []BucketSize
	err := s.db.View(func(tx *bolt.Tx) error {
		out = out[:0]
		for _, name := range allBuckets {
			bs := BucketSize{Bucket: string(name)}
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				bs.Records++
				bs.KeyBytes += len(k)
				bs.ValueBytes += len(v)
				return nil
			})
			if err != nil {
				return err
			}
			out = append(out, bs)
		}
		return nil
	})
	return out, err
}
