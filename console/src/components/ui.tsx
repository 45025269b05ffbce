/**
 * The few building blocks every page uses: an error line that shows the API's code and message, a progress
 * indicator for long actions, a labelled field, a confirmation dialog (native <dialog>: focus is trapped and
 * Escape cancels), a status badge, and a table with a caption for screen readers.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError } from '../api.js';

export function ErrorLine({ error }: { error: ApiError | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      <strong>{error.code}</strong> {error.message}
    </p>
  );
}

export function Busy({ label }: { label: string }) {
  return (
    <p class="busy" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

/** A button that shows progress while its action runs. */
export function ActionButton(props: {
  busy: boolean;
  onClick?: () => void;
  children: ComponentChildren;
  busyLabel?: string;
  type?: 'button' | 'submit';
  kind?: 'primary' | 'danger' | 'plain';
  disabled?: boolean;
  label?: string;
}) {
  return (
    <button
      type={props.type ?? 'button'}
      class={`btn ${props.kind ?? 'plain'}`}
      disabled={props.busy || props.disabled}
      aria-busy={props.busy}
      aria-label={props.label}
      onClick={props.onClick}
    >
      {props.busy ? (
        <>
          <span class="spinner" aria-hidden="true" /> {props.busyLabel ?? 'Working…'}
        </>
      ) : (
        props.children
      )}
    </button>
  );
}

export function Field(props: {
  label: string;
  value: string;
  onInput: (v: string) => void;
  type?: string;
  name?: string;
  required?: boolean;
  autoComplete?: string;
  placeholder?: string;
  hint?: string;
}) {
  const id = `f-${props.name ?? props.label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={(props.type ?? 'text') as 'text'}
        value={props.value}
        required={props.required}
        autoComplete={props.autoComplete}
        placeholder={props.placeholder}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        onInput={(e) => props.onInput((e.currentTarget as HTMLInputElement).value)}
      />
      {props.hint && (
        <small id={`${id}-hint`} class="hint">
          {props.hint}
        </small>
      )}
    </div>
  );
}

export function Select(props: {
  label: string;
  value: string;
  options: { value: string; label?: string }[];
  onChange: (v: string) => void;
  name?: string;
}) {
  const id = `s-${props.name ?? props.label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select
        id={id}
        name={props.name}
        value={props.value}
        onChange={(e) => props.onChange((e.currentTarget as HTMLSelectElement).value)}
      >
        {props.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label ?? o.value}
          </option>
        ))}
      </select>
    </div>
  );
}

const GOOD = new Set(['running', 'online', 'shared', 'Successful', 'completed', 'ok', 'healthy']);
const BAD = new Set(['failed', 'offline', 'Incomplete', 'error', 'denied', 'crashed', 'unhealthy']);

export function Badge({ value }: { value: string | null | undefined }) {
  const v = value ?? 'unknown';
  const tone = GOOD.has(v) ? 'good' : BAD.has(v) ? 'bad' : 'neutral';
  return <span class={`badge ${tone}`}>{v}</span>;
}

let dialogs = 0;

/** Asks before something that cannot be undone; the user must type `confirmText` when given. */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmText?: string;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState('');
  const [titleId] = useState(() => `confirm-title-${++dialogs}`);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) {
      setTyped('');
      d.showModal();
    } else if (!props.open && d.open) d.close();
  }, [props.open]);
  const ok = !props.confirmText || typed === props.confirmText;
  return (
    <dialog ref={ref} aria-labelledby={titleId} onCancel={props.onCancel}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (ok) props.onConfirm();
        }}
      >
        <h2 id={titleId}>{props.title}</h2>
        {props.children}
        {props.confirmText && (
          <Field
            label={`Type "${props.confirmText}" to confirm`}
            name={`${titleId}-text`}
            value={typed}
            onInput={setTyped}
          />
        )}
        <div class="row">
          <button type="button" class="btn plain" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class="btn danger" disabled={!ok}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}

export function Table<T>(props: {
  caption: string;
  rows: T[];
  columns: { label: string; cell: (r: T) => ComponentChildren }[];
  rowKey: (r: T) => string;
  empty?: string;
  captionHidden?: boolean;
}) {
  return (
    <div class="table-wrap">
      <table>
        <caption class={props.captionHidden ? 'sr-only' : undefined}>{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th key={c.label} scope="col">
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.length === 0 ? (
            <tr>
              <td colSpan={props.columns.length} class="empty">
                {props.empty ?? 'Nothing yet.'}
              </td>
            </tr>
          ) : (
            props.rows.map((r) => (
              <tr key={props.rowKey(r)}>
                {props.columns.map((c) => (
                  <td key={c.label}>{c.cell(r)}</td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

export const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '—');
