// Copyright 2021 FerretDB Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package handler

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/FerretDB/wire/wirebson"

	"github.com/FerretDB/FerretDB/v2/internal/documentdb/documentdb_api"
	"github.com/FerretDB/FerretDB/v2/internal/handler/middleware"
	"github.com/FerretDB/FerretDB/v2/internal/mongoerrors"
	"github.com/FerretDB/FerretDB/v2/internal/util/lazyerrors"
	"github.com/FerretDB/FerretDB/v2/internal/util/logging"
	"github.com/FerretDB/FerretDB/v2/internal/util/must"
)

// msgReIndex implements `reIndex` command.
//
// The passed context is canceled when the client connection is closed.
func (h *Handler) msgReIndex(connCtx context.Context, req *middleware.Request) (*middleware.Response, error) {
	doc := req.Document()

	if _, _, err := h.s.CreateOrUpdateByLSID(connCtx, doc); err != nil {
		return nil, err
	}

	dbName, err := getRequiredParam[string](doc, "$db")
	if err != nil {
		return nil, err
	}

	command := doc.Command()

	v := doc.Get(command)

	collection, ok := v.(string)
	if !ok {
		return nil, mongoerrors.NewWithArgument(
			mongoerrors.ErrInvalidNamespace,
			fmt.Sprintf("collection name has invalid type %T", v),
			command,
		)
	}

	if collection == "" {
		return nil, mongoerrors.NewWithArgument(
			mongoerrors.ErrInvalidNamespace,
			fmt.Sprintf("Invalid namespace specified '%s.'", dbName),
			command,
		)
	}

	conn, err := h.p.Acquire()
	if err != nil {
		return nil, lazyerrors.Error(err)
	}
	defer conn.Release()

	listIndexesSpec := must.NotFail(wirebson.MustDocument(
		"listIndexes", collection,
		// use large batchSize to get all results in one batch
		"cursor", wirebson.MustDocument("batchSize", int32(10000)),
	).Encode())

	listRes, cursorID, err := h.p.ListIndexes(connCtx, dbName, listIndexesSpec)
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	if cursorID != 0 {
		_ = h.p.KillCursor(connCtx, cursorID)

		return nil, lazyerrors.New("too many indexes for re-indexing")
	}

	listDoc, err := listRes.DecodeDeep()
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	lazyRes := slog.Any("res", logging.LazyString(listDoc.LogMessage))
	h.L.DebugContext(connCtx, "MsgReIndex: ListIndexes response", lazyRes)

	indexesBefore := listDoc.Get("cursor").(*wirebson.Document).Get("firstBatch").(*wirebson.Array)

	dropSpec := must.NotFail(wirebson.MustDocument(
		"dropIndexes", collection,
		"index", "*", // drops all but default _id index
	).Encode())

	dropRes, err := documentdb_api.DropIndexes(connCtx, conn.Conn(), h.L, dbName, dropSpec, nil)
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	dropDoc, err := dropRes.DecodeDeep()
	if err != nil {
		h.L.DebugContext(connCtx, "MsgReIndex: failed to decode DropIndexes response", logging.Error(err))
	}

	lazyRes = slog.Any("res", logging.LazyString(dropDoc.LogMessage))
	h.L.DebugContext(connCtx, "MsgReIndex: DropIndexes response", lazyRes)

	createSpec := must.NotFail(wirebson.MustDocument(
		"createIndexes", collection,
		"indexes", indexesBefore,
	).Encode())

	createRes, err := h.createIndexes(connCtx, conn.Conn(), command, dbName, createSpec)
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	createDoc, err := createRes.Decode()
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	listRes, cursorID, err = h.p.ListIndexes(connCtx, dbName, listIndexesSpec)
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	if cursorID != 0 {
		_ = h.p.KillCursor(connCtx, cursorID)

		return nil, lazyerrors.New("too many indexes after re-indexing")
	}

	listDoc, err = listRes.DecodeDeep()
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	indexesAfter := listDoc.Get("cursor").(*wirebson.Document).Get("firstBatch").(*wirebson.Array)

	return middleware.ResponseDoc(req, wirebson.MustDocument(
		"nIndexesWas", int32(indexesBefore.Len()),
		"nIndexes", createDoc.Get("numIndexesAfter"),
		"indexes", indexesAfter,
		"ok", float64(1),
	))
}
