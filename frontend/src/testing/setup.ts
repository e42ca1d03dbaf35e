// Component tests run on shared, busy 2-core machines: give waitFor/findBy room before they fail.
import { configure } from '@testing-library/react';

configure({ asyncUtilTimeout: 5000 });
