package sandbox

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // FerretDB's own SQLite driver, registered as "sqlite"
)

// IndexIDLookups gives the SQLite tables behind the named collections an
// index on the exact expression FerretDB v1 filters by when a query is
// {_id: value}. FerretDB's own unique _id index is built on a different
// spelling of the same JSON path (_ferretdb_sjson->"_id" against
// ->'$._id'), which SQLite's planner does not match, so without this every
// point read, update and delete by _id scans the whole table: 15 ms at
// 4,000 documents, growing with every command. Sandbox and tests only; on
// MongoDB the _id index serves these queries. The collections must exist.
func IndexIDLookups(ctx context.Context, mongoDir, database string, collections ...string) error {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(mongoDir, database+".sqlite")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("open sqlite of %s: %w", database, err)
	}
	defer db.Close()
	want := map[string]bool{}
	for _, c := range collections {
		want[c] = true
	}
	rows, err := db.QueryContext(ctx, `SELECT name, table_name FROM _ferretdb_collections`)
	if err != nil {
		return fmt.Errorf("list ferretdb collections: %w", err)
	}
	tables := map[string]string{}
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			rows.Close()
			return fmt.Errorf("list ferretdb collections: %w", err)
		}
		if want[name] {
			tables[name] = table
		}
	}
	rows.Close()
	for _, c := range collections {
		table, ok := tables[c]
		if !ok {
			return fmt.Errorf("collection %s has no table yet", c)
		}
		idx := strings.ReplaceAll(table, `"`, "") + "_id_lookup"
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, idx, table)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("index %s: %w", c, err)
		}
	}
	return nil
}

// MongoDir is where the database keeps its SQLite files.
func (in *Infra) MongoDir() string { return filepath.Join(in.cfg.DataDir, "mongo") }
