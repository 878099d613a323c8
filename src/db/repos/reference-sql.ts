/**
 * SQL fragments of `media_references` that statements of other repositories embed (the media
 * object's `references` figures, the list filter, `refs` on `media.deleted`), kept apart from
 * references.ts so media.ts can use them without an import cycle.
 */

export interface RefSummary {
  ref: string;
  sendAt: string;
}

/** `timestamptz` as JavaScript's `toISOString()` writes it, for JSON built in SQL. */
export const iso = (col: string): string => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const LIVE = (r: string) => `${r}.live_until > now()`;

/**
 * The media object's `references` figures as two columns of the row it is read with (`ref_count`,
 * `next_send_at`): one round trip for a single media or a whole page, no query per row.
 * `media` is the alias of the media table in the statement.
 */
export const refSummaryColumnsSql = (media: string): string =>
  `(SELECT count(*)::int FROM media_references r WHERE r.media_id = ${media}.id AND ${LIVE('r')}) AS ref_count,
   (SELECT min(r.send_at) FROM media_references r WHERE r.media_id = ${media}.id AND ${LIVE('r')}) AS next_send_at`;

/** `true` when the media (alias `media`) has a live reference: the list filter `referenced`. */
export const hasLiveReferenceSql = (media: string): string =>
  `EXISTS (SELECT 1 FROM media_references r WHERE r.media_id = ${media}.id AND ${LIVE('r')})`;

/** The live references of media `idExpr` as a JSON array `[{ref, sendAt}]` by send time; NULL when none. */
export const liveRefsJsonSql = (idExpr: string, sendAtKey: 'sendAt' | 'send_at' = 'sendAt'): string =>
  `(SELECT jsonb_agg(jsonb_build_object('ref', r.ref, '${sendAtKey}', ${iso('r.send_at')}) ORDER BY r.send_at, r.ref)
    FROM media_references r WHERE r.media_id = ${idExpr} AND ${LIVE('r')})`;

/** The live refs of media `idExpr` as a JSON array of the callers' ids, by send time; NULL when none. */
const liveRefIdsJsonSql = (idExpr: string): string =>
  `(SELECT jsonb_agg(r.ref ORDER BY r.send_at, r.ref) FROM media_references r WHERE r.media_id = ${idExpr} AND ${LIVE('r')})`;

/**
 * A webhook body (`body`, jsonb, NULL for none) with `payload.refs` (the refs, as the callers named
 * them) and `payload.references` (`[{ref, send_at}]`) added when media `idExpr` has live references: `media.deleted` lists the sends a deletion breaks, in the statement that marks
 * the media deleted (`markDeletedAudited`), so every way a media goes (client, expiry, sweep,
 * device destroyed) says it the same way.
 */
export const withLiveRefsSql = (body: string, idExpr: string): string =>
  `CASE WHEN ${body} IS NULL THEN NULL ELSE ${body} || jsonb_build_object('payload', (${body} -> 'payload') ||
     jsonb_strip_nulls(jsonb_build_object('refs', ${liveRefIdsJsonSql(idExpr)}, 'references', ${liveRefsJsonSql(idExpr, 'send_at')}))) END`;

/** The references of deleted media (`ids`, a text[] expression) go with them, in the same statement. */
export const deleteReferencesOfSql = (ids: string): string => `DELETE FROM media_references WHERE media_id = ANY(${ids})`;

