/**
 * The Sites panel of the tenant view: the tenant's sites (`GET /tenants/T/api/sites`) with active, sync status and
 * last synced; activate; deactivate in two steps. The first asks the tenant without confirming, which changes nothing
 * and answers 409 ERR_SITE_CONFIRM counting what would be removed; the dialog shows those counts and only its
 * confirmation sends `{"confirm": true}` (docs/sites.md).
 */
import { useState } from 'preact/hooks';
import { api, ApiError, tenantPath } from '../api.js';
import { useAction, useLoad } from '../hooks.js';
import { ActionButton, Badge, Busy, ConfirmDialog, ErrorLine, Table, when } from '../components/ui.js';

interface Site {
  name: string;
  active: boolean;
  syncStatus: string;
  lastSynced: string | null;
}

export function Sites({ tenant }: { tenant: string }) {
  const r = useLoad(() => api.get<Site[]>(tenantPath(tenant, '/sites')), [tenant]);
  const [pending, setPending] = useState<{ site: string; counts: string }>();
  const [done, setDone] = useState('');
  const path = (site: string, verb: string) => tenantPath(tenant, `/sites/${encodeURIComponent(site)}/${verb}`);
  const activate = useAction(async (site: string) => {
    await api.post(path(site, 'activate'));
    setDone(`Site ${site} is active.`);
    r.reload();
  });
  // Step one: a dry run. The tenant refuses without confirm and says what would go.
  const ask = useAction(async (site: string) => {
    try {
      await api.post(path(site, 'deactivate'));
    } catch (e) {
      if (e instanceof ApiError && e.code === 'ERR_SITE_CONFIRM') return setPending({ site, counts: e.message });
      throw e;
    }
  });
  const deactivate = useAction(async (site: string) => {
    await api.post(path(site, 'deactivate'), { confirm: true });
    setDone(`Site ${site} is inactive; its data was removed.`);
    r.reload();
  });
  const busy = activate.busy || ask.busy || deactivate.busy;
  return (
    <section aria-labelledby="t-sites">
      <h2 id="t-sites">Sites</h2>
      <ErrorLine error={r.error ?? activate.error ?? ask.error ?? deactivate.error} />
      {done && <p role="status">{done}</p>}
      {r.loading && !r.data && <Busy label="Loading sites…" />}
      {r.data && (
        <Table
          caption={`Sites of ${tenant}`}
          captionHidden
          rows={r.data}
          rowKey={(s) => s.name}
          empty="No sites."
          columns={[
            { label: 'Site', cell: (s) => s.name },
            { label: 'Active', cell: (s) => (s.active ? 'yes' : 'no') },
            { label: 'Sync status', cell: (s) => <Badge value={s.syncStatus} /> },
            { label: 'Last synced', cell: (s) => (s.lastSynced ? when(s.lastSynced) : 'never') },
            {
              label: 'Actions',
              cell: (s) =>
                s.active ? (
                  <ActionButton
                    kind="danger"
                    busy={busy}
                    label={`Deactivate site ${s.name}`}
                    onClick={() => void ask.start(s.name)}
                  >
                    Deactivate
                  </ActionButton>
                ) : (
                  <ActionButton
                    busy={busy}
                    label={`Activate site ${s.name}`}
                    onClick={() => void activate.start(s.name)}
                  >
                    Activate
                  </ActionButton>
                ),
            },
          ]}
        />
      )}
      <ConfirmDialog
        open={pending !== undefined}
        title={`Deactivate site ${pending?.site ?? ''}?`}
        confirmLabel="Deactivate and remove its data"
        onCancel={() => setPending(undefined)}
        onConfirm={() => {
          const site = pending!.site;
          setPending(undefined);
          void deactivate.start(site);
        }}
      >
        <p>{pending?.counts}</p>
      </ConfirmDialog>
    </section>
  );
}
