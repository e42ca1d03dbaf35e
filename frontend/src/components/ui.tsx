import { useCallback, useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { ApiError, apiHasPath } from '../api/client';

/** An error the person can act on: the hub's sentence, and a retry when one helps. */
export function ErrorNotice({ error, onRetry, title }: { error: unknown; onRetry?: () => void; title?: string }) {
  if (!error) return null;
  const message =
    error instanceof ApiError || error instanceof Error ? error.message : 'Something went wrong. Reload the page and try again.';
  return (
    <div className="notice notice-error" role="alert">
      {title && <strong>{title} </strong>}
      <span>{message}</span>
      {onRetry && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/**
 * The notice above a form. When the hub's reason is already shown next to the field it concerns (`places`
 * says which fields are shown inline, and how to name them), say only where to look, so that the same
 * sentence does not appear twice.
 */
export function pointToField(
  error: unknown,
  fields: Record<string, string>,
  places: [(key: string) => boolean, string][],
  sentence: (where: string) => string,
): unknown {
  if (!(error instanceof ApiError)) return error;
  const inline = Object.entries(fields).filter(([key]) => places.some(([match]) => match(key)));
  if (!inline.length) return error;
  const norm = (text: string) => text.replace(/\s+/g, ' ').trim();
  const shown = inline.map(([, text]) => norm(text)).join(' ');
  if (!shown.includes(norm(error.message)) && !norm(error.message).includes(shown)) return error;
  const where = places.find(([match]) => inline.some(([key]) => match(key)))![1];
  return new Error(sentence(where));
}

export function Notice({ kind = 'info', children }: { kind?: 'info' | 'success' | 'warning'; children: ReactNode }) {
  return (
    <div className={`notice notice-${kind}`} role={kind === 'warning' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}

export function ProgressBar({ value, label, tone }: { value: number; label: string; tone?: 'ok' | 'bad' | 'busy' }) {
  const pct = Math.round(Math.min(1, Math.max(0, value)) * 100);
  return (
    <div
      className={`progress ${tone ? `progress-${tone}` : ''}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct}
      aria-valuetext={`${pct}%`}
    >
      <div className="progress-fill" style={{ width: `${pct}%` }} />
    </div>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      {what}…
    </p>
  );
}

export function FieldError({ id, message }: { id: string; message?: string }) {
  if (!message) return null;
  return (
    <p className="field-error" id={id}>
      {message}
    </p>
  );
}

/** Load something from the API, with loading/error state and a reload. */
export function useApi<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    loadRef
      .current(controller.signal)
      .then((value) => {
        if (!controller.signal.aborted) {
          setData(value);
          setError(null);
        }
      })
      .catch((err) => {
        if (!controller.signal.aborted && (err as Error).name !== 'AbortError') setError(err);
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false);
      });
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload, setData };
}

/** Call `fn` every `ms` while `active`; stops when the tab is hidden to spare the hub. */
export function useInterval(fn: () => void, ms: number, active: boolean) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!active) return;
    const id = window.setInterval(() => {
      if (document.visibilityState !== 'hidden') ref.current();
    }, ms);
    return () => window.clearInterval(id);
  }, [ms, active]);
}

export function Pager({ page, count, pageSize, onPage }: { page: number; count: number; pageSize: number; onPage: (p: number) => void }) {
  const pages = Math.max(1, Math.ceil(count / pageSize));
  if (pages <= 1) return null;
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" className="btn btn-small" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        Previous
      </button>
      <span>
        Page {page} of {pages}
      </span>
      <button type="button" className="btn btn-small" disabled={page >= pages} onClick={() => onPage(page + 1)}>
        Next
      </button>
    </nav>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [copied, setCopied] = useState<'idle' | 'ok' | 'fail'>('idle');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied('ok');
    } catch {
      setCopied('fail');
    }
  };
  return (
    <>
      <button type="button" className="btn btn-small" onClick={copy}>
        {label}
      </button>
      <span role="status" aria-live="polite" className="muted small">
        {copied === 'ok' ? 'Copied.' : copied === 'fail' ? 'Your browser blocked copying: select the text and copy it by hand.' : ''}
      </span>
    </>
  );
}

/**
 * Show `children` only once the hub offers `path` (features land one by one); until then say so plainly,
 * instead of an error about a missing address.
 */
export function FeatureGate({ path, what, title, quiet = false, children }: {
  path: string;
  what: string;
  title: string;
  /** Inside another page: one labelled line instead of a whole page. */
  quiet?: boolean;
  children: ReactNode;
}) {
  const [state, setState] = useState<'checking' | 'yes' | 'no'>('checking');
  useEffect(() => {
    let live = true;
    apiHasPath(path).then((has) => live && setState(has ? 'yes' : 'no'));
    return () => {
      live = false;
    };
  }, [path]);
  if (state === 'checking') return <Loading />;
  if (state === 'no' && quiet)
    return (
      <p className="notice notice-info small" role="status" data-testid="feature-unavailable">
        {what} is not available on this Pollen hub yet.
      </p>
    );
  if (state === 'no')
    return (
      <section>
        <h1>{title}</h1>
        <div className="notice notice-info" role="status" data-testid="feature-unavailable">
          {what} is not available on this Pollen hub yet. Ask your site administrator when it will be switched on; your
          datasets are ready for it in the meantime.
        </div>
      </section>
    );
  return <>{children}</>;
}

/** Open a <dialog> as a modal once it is on the page (focus moves into it; Escape closes it). */
export function useModal() {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const el = dialog.current;
    if (!el || el.open) return;
    if (typeof el.showModal === 'function') el.showModal();
    else el.setAttribute('open', ''); // an older browser (or a test DOM) without modal dialogs: show it in place
    el.querySelector<HTMLElement>('[data-autofocus]')?.focus(); // e.g. the safe choice of a question
  }, []);
  return dialog;
}

/** One request behind a button: busy while it runs, and the hub's refusal kept to show next to it. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, setError, run };
}

/**
 * A modal question before something that is hard to undo: says what will happen, optionally asks why,
 * and keeps the hub's refusal on screen (with the dialog open) so the person can act on it.
 */
export function ConfirmDialog({ title, children, confirmLabel, reasonLabel, danger = false, onConfirm, onClose }: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  /** Ask for a reason (kept with the change and shown to others) when set. */
  reasonLabel?: string;
  danger?: boolean;
  onConfirm: (reason: string) => Promise<void>;
  onClose: () => void;
}) {
  const dialog = useModal();
  const id = useId();
  const [reason, setReason] = useState('');
  const { busy, error, run } = useAction();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void run(() => onConfirm(reason.trim()));
  };
  return (
    <dialog ref={dialog} className="dialog" aria-labelledby={`${id}-title`} onCancel={(e) => { e.preventDefault(); onClose(); }}>
      <form onSubmit={submit}>
        <h2 id={`${id}-title`}>{title}</h2>
        <div className="dialog-body">{children}</div>
        {reasonLabel && (
          <div className="field">
            <label htmlFor={`${id}-reason`}>{reasonLabel}</label>
            <textarea id={`${id}-reason`} rows={3} value={reason} maxLength={2000} onChange={(e) => setReason(e.target.value)} />
          </div>
        )}
        <ErrorNotice error={error} />
        <div className="actions">
          <button type="submit" className={`btn ${danger ? 'btn-danger-solid' : 'btn-primary'}`} disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
          {/* Enter on an unread question must not destroy anything: start on the safe choice. */}
          <button type="button" className="btn" onClick={onClose} data-autofocus={danger && !reasonLabel ? '' : undefined}>
            Keep things as they are
          </button>
        </div>
      </form>
    </dialog>
  );
}
