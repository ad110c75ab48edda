/**
 * Errors that infotap reports to its user as one line, with no stack trace.
 *
 * @module
 */

/** Where in the input an error was found: file, batch and column, each when known. */
export interface InputLocation {
  /** Input path as the user gave it (`-` for standard input). */
  file?: string;
  /** Zero-based index of the record batch within that file. */
  batch?: number;
  /** Column (layer, parameter tensor) name. */
  column?: string;
}

/** Formats a location as `file 'x', batch 3, column 'fc1'`. */
export function formatLocation(where: InputLocation): string {
  const parts: string[] = [];
  if (where.file !== undefined) parts.push(`file '${where.file}'`);
  if (where.batch !== undefined) parts.push(`batch ${where.batch}`);
  if (where.column !== undefined) parts.push(`column '${where.column}'`);
  return parts.join(", ");
}

/**
 * A problem with the user's input or options. The CLI prints its message as one line and exits non-zero.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InputError } from "./errors.ts";
 * const e = new InputError("Cannot read layer as its width changed: current value is 3", { file: "a.arrows", batch: 2, column: "fc1" });
 * assert.ok(e.message.startsWith("file 'a.arrows', batch 2, column 'fc1': "));
 * ```
 */
export class InputError extends Error {
  /** Where the problem was found. */
  readonly where: InputLocation;
  /** The message without the location prefix. */
  readonly detail: string;
  constructor(message: string, where: InputLocation = {}) {
    const prefix = formatLocation(where);
    super(prefix ? `${prefix}: ${message}` : message);
    this.name = "InputError";
    this.where = where;
    this.detail = message;
  }
}

/** Formats a value for an error message: strings quoted, the rest as JSON. */
export function show(value: unknown): string {
  if (typeof value === "string") return `'${value}'`;
  if (typeof value === "bigint") return value.toString();
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
