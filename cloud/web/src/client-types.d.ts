// Types of the console's API client (api.js), derived from `paths` in
// api-types.d.ts, which openapi-typescript generates from the cloud's own
// /openapi.json (scripts/console-types). Nothing here runs: tsc checks the
// views against these types (`tsc -p cloud/web`), so a view that calls a
// path or method the API does not have, leaves out a required parameter,
// or sends a body field the API does not accept fails the check.

import type { paths } from "./api-types";

export type Method = "get" | "put" | "post" | "delete" | "patch";

/** The paths (templates such as `/events/{id}`) that have `M`. */
export type PathOf<M extends Method> = {
  [P in keyof paths]: paths[P][M] extends object ? P : never;
}[keyof paths];

type Op<M extends Method, P extends PathOf<M>> = paths[P][M];

type Params<O> = O extends { parameters: infer X } ? X : {};

type BodyPart<O> = O extends { requestBody: { content: { "application/json": infer B } } }
  ? { body: B }
  : O extends { requestBody?: { content: { "application/json": infer B } } }
    ? { body?: B }
    : { body?: never };

/** What a call takes: `path` (the template's values), `query`, `body`. */
export type Init<M extends Method, P extends PathOf<M>> = Omit<Params<Op<M, P>>, "header" | "cookie"> & BodyPart<Op<M, P>>;

/** The query parameters of an operation. */
export type Query<M extends Method, P extends PathOf<M>> = Init<M, P> extends { query?: infer Q } ? Q : never;

/** The JSON body of an operation. */
export type Body<M extends Method, P extends PathOf<M>> = Init<M, P> extends { body?: infer B } ? B : never;

/** `init` may be left out when nothing in it is required. */
export type InitArgs<M extends Method, P extends PathOf<M>> = {} extends Init<M, P> ? [init?: Init<M, P>] : [init: Init<M, P>];

type Json<R> = R extends { content: { "application/json": infer T } } ? T : null;

/** The JSON answer of the operation's success response (null for 204). */
export type Answer<M extends Method, P extends PathOf<M>> = Op<M, P> extends { responses: infer R }
  ? R extends { 200: infer S }
    ? Json<S>
    : R extends { 201: infer S }
      ? Json<S>
      : R extends { 202: infer S }
        ? Json<S>
        : null
  : never;

/** One JSON call. */
export type Call<M extends Method> = <P extends PathOf<M>>(path: P, ...init: InitArgs<M, P>) => Promise<Answer<M, P>>;

/** The raw response (CSV, SVG, streams), same typed path and init. */
export type RawCall = <M extends Method, P extends PathOf<M>>(method: M, path: P, ...init: InitArgs<M, P>) => Promise<Response>;

/** An object URL of the answer (images the API draws). */
export type ImageCall = <M extends Method, P extends PathOf<M>>(method: M, path: P, ...init: InitArgs<M, P>) => Promise<string>;

/** The GET paths whose answer is a page `{ items, next_cursor }`. */
export type PagedPath = {
  [P in PathOf<"get">]: Answer<"get", P> extends { items: unknown[]; next_cursor?: unknown } ? P : never;
}[PathOf<"get">];

type Item<A> = A extends { items: (infer T)[] } ? T : never;

/** Every item of a paginated list (at most `max`). */
export type All = <P extends PagedPath>(path: P, init?: Init<"get", P>, max?: number) => Promise<Item<Answer<"get", P>>[]>;
