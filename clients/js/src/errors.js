// One error tree (the Python client's, clients/python/errors.py):
//
//   KefuError                      code: the wire error code or null
//   +-- ProtocolError              the peer broke the protocol, or our own misuse of the core (LocalProtocolError)
//   |   +-- LocalProtocolError
//   +-- ConnectError               connect() failed
//   |   +-- AuthFailed, ServerNotTrusted, NoCommonSuite, ServerBusy, ConnectTimeout
//   +-- ConnectionLost
//   |   +-- CredentialsRefused
//   +-- ClientClosed
//   +-- Timeout
//   |   +-- SendTimeout
//   +-- RequestRefused             a SEND, SYNC or service request refused (non-fatal ERROR / RESULT status)
//       +-- SendRefused
import { ERROR_CODES } from "./frames.js";

/** Wire error codes, name -> number. */
export const ErrorCode = Object.freeze(Object.fromEntries(Object.entries(ERROR_CODES).map(([k, [c]]) => [k, c])));
const NAMES = new Map(Object.entries(ERROR_CODES).map(([k, [c]]) => [c, k]));
const FATAL = new Set(Object.values(ERROR_CODES).filter(([, f]) => f).map(([c]) => c));

export function codeName(code) {
  return NAMES.get(code) ?? null;
}

/** Whether an ERROR with this code ends the connection (section 4.7): unknown 400-499 codes are not fatal. */
export function isFatal(code) {
  if (NAMES.has(code)) return FATAL.has(code);
  return code < 400 || code > 499;
}

export class KefuError extends Error {
  constructor(message, code = null) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.codeName = code === null ? null : codeName(code);
  }
}
export class ProtocolError extends KefuError {}
export class LocalProtocolError extends ProtocolError {}
export class ConnectError extends KefuError {}
export class AuthFailed extends ConnectError {}
export class ServerNotTrusted extends ConnectError {}
export class NoCommonSuite extends ConnectError {}
export class ServerBusy extends ConnectError {
  constructor(message, code, retryAfterMs = 0) {
    super(message, code);
    this.retryAfterMs = retryAfterMs;
  }
}
export class ConnectTimeout extends ConnectError {}
export class ConnectionLost extends KefuError {}
export class CredentialsRefused extends ConnectionLost {}
export class ClientClosed extends KefuError {}
export class Timeout extends KefuError {}
export class SendTimeout extends Timeout {}
export class RequestRefused extends KefuError {}
export class SendRefused extends RequestRefused {}

/** The ConnectError subclass for a handshake failure code. */
export function connectError(code, reason) {
  const text = `${codeName(code) ?? code}: ${reason}`;
  switch (code) {
    case ErrorCode.AUTH_FAILED:
      return new AuthFailed(text, code);
    case ErrorCode.SERVER_KEY_NOT_PINNED:
    case ErrorCode.BAD_SIGNATURE:
      return new ServerNotTrusted(text, code);
    case ErrorCode.NO_COMMON_SUITE:
      return new NoCommonSuite(text, code);
    case ErrorCode.OVERLOADED:
    case ErrorCode.SHUTTING_DOWN:
      return new ServerBusy(text, code);
    default:
      return new ConnectError(text, code);
  }
}
