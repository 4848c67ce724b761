// Lets node load stage.js natively: the contract's imports
// (`helio:governance/...`) resolve to host.mjs, a stand-in for the host.
import { register } from 'node:module';

register('./resolve.mjs', import.meta.url);
