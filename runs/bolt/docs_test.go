package bolt

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/runs"
)

func TestDocuments(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "canary.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)

	_, err = s.Document(ctx, "rollout", "caiso")
	require.ErrorIs(t, err, runs.ErrDocumentNotFound)
	docs, err := s.DocumentsOf(ctx, "rollout")
	require.NoError(t, err)
	require.Empty(t, docs)

	got, err := s.UpdateDocument(ctx, "rollout", "caiso", func(old []byte) ([]byte, error) {
		require.Nil(t, old)
		return []byte(`{"phase":"pending"}`), nil
	})
	require.NoError(t, err)
	require.JSONEq(t, `{"phase":"pending"}`, string(got))

	// nil from fn: no change.
	got, err = s.UpdateDocument(ctx, "rollout", "caiso", func([]byte) ([]byte, error) { return nil, nil })
	require.NoError(t, err)
	require.JSONEq(t, `{"phase":"pending"}`, string(got))

	// Concurrent increments lose nothing.
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			_, err := s.UpdateDocument(ctx, "counter", "n", func(old []byte) ([]byte, error) {
				n := 0
				if old != nil {
					n, _ = strconv.Atoi(string(old))
				}
				return []byte(strconv.Itoa(n + 1)), nil
			})
			require.NoError(t, err)
		})
	}
	wg.Wait()
	n, err := s.Document(ctx, "counter", "n")
	require.NoError(t, err)
	require.Equal(t, "30", string(n))

	// Durable across a restart.
	require.NoError(t, s.Close())
	s, err = Open(path, Options{})
	require.NoError(t, err)
	defer s.Close()
	docs, err = s.DocumentsOf(ctx, "rollout")
	require.NoError(t, err)
	require.JSONEq(t, `{"phase":"pending"}`, string(docs["caiso"]))

	// Deleted durably; deleting what is not there is no error.
	require.NoError(t, s.DeleteDocument(ctx, "rollout", "caiso"))
	_, err = s.Document(ctx, "rollout", "caiso")
	require.ErrorIs(t, err, runs.ErrDocumentNotFound)
	require.NoError(t, s.DeleteDocument(ctx, "rollout", "caiso"))
	require.NoError(t, s.DeleteDocument(ctx, "no-such-kind", "x"))
}
