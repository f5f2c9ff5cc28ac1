package sqlite

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/audit-stream/audit-stream/internal/store"
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// wrapFull marks an error that says the disk is full (SQLITE_FULL, or an
// ENOSPC on the way) with store.ErrFull, so the API answers it with a 503 and
// keeps serving reads.
func wrapFull(err error) error {
	if err == nil || errors.Is(err, store.ErrFull) {
		return err
	}
	var se *sqlitedrv.Error
	if (errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", store.ErrFull, err)
	}
	return err
}
