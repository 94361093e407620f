// A push API holding a known document, driven by hand-written requests, for the tests that try to
// get past its token.
import type { Test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { AUTH, config, start, type Running } from './surrogate.js'
import { rawRequest, type RawAnswer, type RawRequest } from './raw-http.js'

/** The live document's subnet: the marker that shows the document in an answer. */
export const MARKER = '10.77.0.0/16'
export const LIVE = JSON.stringify({ deliveryCriteria: [{ region: { subnet: MARKER } }] })
/** What an attacker would push: everyone allowed. */
export const OPEN = JSON.stringify({ deliveryCriteria: [{ protocol: ['http', 'https'] }] })

/** Every file of the state directory and its bytes: any write shows. */
export function snapshot(dir: string): string {
  return readdirSync(dir)
    .sort()
    .map((name) => `${name}\n${readFileSync(join(dir, name), 'utf8')}`)
    .join('\n---\n')
}

export const is2xxOr3xx = (status: number): boolean => status >= 200 && status < 400

export interface Api extends Running {
  stateDir: string
  send(request: RawRequest): Promise<RawAnswer>
  /** The live policy's version, read from the plugin. */
  version(): number
}

/** A surrogate whose push API holds LIVE as version 1. */
export async function api(t: Test): Promise<Api> {
  const cfg = config({ countryDb: 'none' })
  const s = await start(cfg)
  t.teardown(() => s.surrogate.close())
  t.equal((await s.push(LIVE)).status, 200, 'the document is live')
  const port = Number(new URL(s.apiUrl).port)
  return {
    ...s,
    stateDir: cfg.stateDir,
    send: (request) => rawRequest(port, request),
    version: () => s.surrogate.content.cdniAuthz.version,
  }
}

/** `method target` carrying OPEN as a JSON body, without a token. */
export const anonymous = (method: string, target: string): RawRequest => ({
  method,
  target,
  headers: { 'Content-Type': 'application/json' },
  body: OPEN,
})
export const withToken = (method: string, target: string, body = ''): RawRequest => ({
  method,
  target,
  headers: { 'Content-Type': 'application/json', Authorization: AUTH.authorization },
  body,
})
