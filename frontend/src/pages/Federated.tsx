import type { Membership } from '../api/types';
import { useDocumentTitle } from '../router';
import { FeatureGate } from '../components/ui';

/**
 * Training across hospitals (the model travels, the images stay). The hub's cross-site API
 * (/api/v1/federated-jobs/) is still being built: until it is listed in the hub's schema this page
 * says so plainly and shows nothing invented.
 */
export function FederatedPage({ site }: { site: Membership }) {
  useDocumentTitle(`Across hospitals · ${site.site.name}`);
  return (
    <FeatureGate path="/federated-jobs/" what="Training across hospitals" title="Train across hospitals">
      <section>
        <h1>Train across hospitals</h1>
        <p className="muted">This hub lists cross-site training, but this dashboard does not show it yet.</p>
      </section>
    </FeatureGate>
  );
}
