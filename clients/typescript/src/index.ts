/**
 * A typed client for points-engine, for mini-program and H5 front-ends.
 *
 * `src/schema.ts` is generated from the server's OpenAPI document (`openapi.json`, written by
 * `points-engine openapi`) with openapi-typescript; requests go through openapi-fetch, so every
 * path, field and answer is typed as the server sends it, dialect envelope included.
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type { components, paths };
export type Schemas = components["schemas"];

/** What the client authenticates with. Change a field at any time; the next request uses it. */
export interface Credentials {
  /** The session token a login answered (`Authorization: Bearer`). */
  token?: string;
  /** `X-Admin-Key`, for the admin API and server-side routes. Never ship it to a browser. */
  adminKey?: string;
}

/** A client of the server at `baseUrl` (e.g. `https://points.example.com`). */
export function createPointsClient(
  baseUrl: string,
  credentials: Credentials = {},
): Client<paths> {
  const client = createClient<paths>({ baseUrl });
  const auth: Middleware = {
    onRequest({ request }) {
      if (credentials.token) {
        request.headers.set("Authorization", `Bearer ${credentials.token}`);
      }
      if (credentials.adminKey) {
        request.headers.set("X-Admin-Key", credentials.adminKey);
      }
      return request;
    },
  };
  client.use(auth);
  return client;
}

/** A refusal in the route's dialect: its code and the message to show. */
export class PointsError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "PointsError";
  }
}

/** The data type of the success variant of an answer type. */
export type GiftSuccess<A> = A extends { status: true; data: infer T } ? T : never;
export type CenterSuccess<A> = A extends { code: 0; result: infer T } ? T : never;
export type MiniSuccess<A> = A extends { code: 0; data: infer T } ? T : never;

interface Refusable {
  code: number;
  msg: string;
}

/** The data of a 000 (or admin API) answer; a refusal throws {@link PointsError}. */
export function giftData<A extends Refusable & { status: boolean }>(
  answer: A | undefined,
): GiftSuccess<A> {
  if (!answer) throw new PointsError(0, "no answer");
  if (!answer.status) throw new PointsError(answer.code, answer.msg);
  return (answer as unknown as { data: GiftSuccess<A> }).data;
}

/** The result of a 001 answer; a refusal throws {@link PointsError}. */
export function centerResult<A extends Refusable>(answer: A | undefined): CenterSuccess<A> {
  if (!answer) throw new PointsError(0, "no answer");
  if (answer.code !== 0) throw new PointsError(answer.code, answer.msg);
  return (answer as unknown as { result: CenterSuccess<A> }).result;
}

/** The data of a 003 answer; a refusal throws {@link PointsError}. */
export function miniData<A extends Refusable>(answer: A | undefined): MiniSuccess<A> {
  if (!answer) throw new PointsError(0, "no answer");
  if (answer.code !== 0) throw new PointsError(answer.code, answer.msg);
  return (answer as unknown as { data: MiniSuccess<A> }).data;
}
