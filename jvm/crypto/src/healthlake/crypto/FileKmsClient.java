package healthlake.crypto;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.ParquetCryptoRuntimeException;
import org.apache.parquet.crypto.TagVerificationException;
import org.apache.parquet.crypto.keytools.LocalWrapKmsClient;

/**
 * The key-management client of the embedded profile: Parquet modular encryption's master keys from a local key
 * file (one "keyId:base64 key" per line, '#' comments), whose path is the Hadoop setting
 * {@code healthlake.kms.key.file}. Data keys are wrapped locally with the master key (AES-GCM) and the wrapped
 * key is stored in the file's metadata; the master keys never leave the key file.
 *
 * <p>A real deployment sets {@code parquet.encryption.kms.client.class} to its KMS's client (Vault, a cloud KMS)
 * instead; the tables' encryption properties stay the same.
 */
public class FileKmsClient extends LocalWrapKmsClient {
  public static final String KEY_FILE_PROPERTY = "healthlake.kms.key.file";

  private Map<String, byte[]> masterKeys;
  private String source;

  @Override
  protected void initializeInternal() throws KeyAccessDeniedException {
    source = hadoopConfiguration.getTrimmed(KEY_FILE_PROPERTY);
    if (source == null || source.isEmpty()) {
      throw new ParquetCryptoRuntimeException(
          "no key file: set the Hadoop property " + KEY_FILE_PROPERTY + " (spark.hadoop." + KEY_FILE_PROPERTY + ")");
    }
    Path path = Paths.get(source);
    List<String> lines;
    try {
      lines = Files.readAllLines(path, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new KeyAccessDeniedException("cannot read the key file " + source + ": " + e, e);
    }
    Map<String, byte[]> keys = new HashMap<>();
    int number = 0;
    for (String raw : lines) {
      number++;
      String line = raw.trim();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      int colon = line.indexOf(':');
      if (colon <= 0) {
        throw new ParquetCryptoRuntimeException(source + " line " + number + ": expected keyId:base64key");
      }
      byte[] key;
      try {
        key = Base64.getDecoder().decode(line.substring(colon + 1).trim());
      } catch (IllegalArgumentException e) {
        throw new ParquetCryptoRuntimeException(source + " line " + number + ": the key is not base64", e);
      }
      if (key.length != 16 && key.length != 24 && key.length != 32) {
        throw new ParquetCryptoRuntimeException(
            source + " line " + number + ": an AES key has 16, 24 or 32 bytes, not " + key.length);
      }
      keys.put(line.substring(0, colon).trim(), key);
    }
    masterKeys = keys;
  }

  /** A data key that this key file's master key does not unwrap: say which key file, not only "GCM tag check failed". */
  @Override
  public byte[] unwrapKey(String wrappedKey, String masterKeyIdentifier) throws KeyAccessDeniedException {
    try {
      return super.unwrapKey(wrappedKey, masterKeyIdentifier);
    } catch (TagVerificationException e) {
      throw new KeyAccessDeniedException("master key '" + masterKeyIdentifier + "' of " + source
          + " does not unwrap this file's data key: the file was written under another key file (give this process"
          + " the deployment's key file, $LAKEHOUSE_KMS_KEY_FILE) or its key metadata was altered", e);
    }
  }

  @Override
  protected byte[] getMasterKeyFromServer(String masterKeyIdentifier) throws KeyAccessDeniedException {
    byte[] key = masterKeys.get(masterKeyIdentifier);
    if (key == null) {
      throw new KeyAccessDeniedException("master key '" + masterKeyIdentifier + "' is not in " + source);
    }
    return key;
  }
}
