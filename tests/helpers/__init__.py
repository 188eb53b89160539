"""What the tests share: data writers, run helpers and fault injectors. Test modules import from here, never
from each other."""
