/** Sign-in: name and password, and a one-time code when main answers that the user has TOTP on. */
import { useState } from 'preact/hooks';
import { ApiError, signIn, type Session } from '../api.js';
import { useAction } from '../hooks.js';
import { ActionButton, ErrorLine, Field } from '../components/ui.js';

export function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [needTotp, setNeedTotp] = useState(false);
  const action = useAction(async () => {
    try {
      onSignedIn(await signIn(name, password, needTotp ? totp : undefined));
    } catch (e) {
      if (e instanceof ApiError && e.code === 'ERR_TOTP_REQUIRED') setNeedTotp(true);
      throw e;
    }
  });
  return (
    <main id="main" class="signin">
      <h1>Palisade console</h1>
      <form
        aria-label="Sign in"
        onSubmit={(e) => {
          e.preventDefault();
          void action.start();
        }}
      >
        <Field label="User name" name="name" value={name} onInput={setName} required autoComplete="username" />
        <Field
          label="Password"
          name="password"
          type="password"
          value={password}
          onInput={setPassword}
          required
          autoComplete="current-password"
        />
        {needTotp && (
          <Field
            label="One-time code"
            name="totp"
            value={totp}
            onInput={setTotp}
            autoComplete="one-time-code"
            hint="The six digits your authenticator app shows now."
          />
        )}
        <ErrorLine error={action.error} />
        <ActionButton type="submit" kind="primary" busy={action.busy} busyLabel="Signing in…">
          Sign in
        </ActionButton>
      </form>
    </main>
  );
}
