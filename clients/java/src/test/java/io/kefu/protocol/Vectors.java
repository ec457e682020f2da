package io.kefu.protocol;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Test helper: reads spec/vectors/*.json and converts between the vectors' field maps and frame records.
 *
 * <p>The conversion is generic over the records' components (snake_case field names of the spec to the records'
 * lowerCamelCase), so a test checks the names and types of every component against the vectors too. The directory is
 * the system property {@code kefu.vectors}, else {@code spec/vectors} found by walking up from the working directory.
 */
final class Vectors {
    private Vectors() {}

    static Path dir() {
        String prop = System.getProperty("kefu.vectors");
        if (prop != null) {
            return Path.of(prop);
        }
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            Path candidate = p.resolve("spec").resolve("vectors");
            if (Files.isDirectory(candidate)) {
                return candidate;
            }
        }
        throw new IllegalStateException("spec/vectors not found: set -Dkefu.vectors");
    }

    static Path specFile(String name) {
        return dir().getParent().resolve(name);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> load(String file) {
        try {
            String text = Files.readString(dir().resolve(file), StandardCharsets.UTF_8);
            return (Map<String, Object>) Json.parse(text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> list(Map<String, Object> map, String key) {
        return (List<Map<String, Object>>) map.get(key);
    }

    static String snake(String camel) {
        StringBuilder out = new StringBuilder();
        for (char c : camel.toCharArray()) {
            if (Character.isUpperCase(c)) {
                out.append('_').append(Character.toLowerCase(c));
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    /** SEND_ACK -> Frame.SendAck. */
    static Class<?> frameClass(String typeName) {
        StringBuilder name = new StringBuilder();
        for (String part : typeName.split("_")) {
            name.append(part.charAt(0)).append(part.substring(1).toLowerCase());
        }
        for (Class<?> c : Frame.class.getPermittedSubclasses()) {
            if (c.getSimpleName().contentEquals(name)) {
                return c;
            }
        }
        throw new IllegalArgumentException("no record for " + typeName);
    }

    /** The frame a vector describes: its header fields and body fields. */
    static Frame frameOf(Map<String, Object> vector) {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("request_id", vector.get("request_id"));
        fields.put("flags", vector.get("flags"));
        @SuppressWarnings("unchecked")
        Map<String, Object> body = (Map<String, Object>) vector.get("fields");
        fields.putAll(body);
        return (Frame) build(frameClass((String) vector.get("type_name")), fields);
    }

    /** A record of {@code type} from a field map, every component required and no field left over. */
    static Object build(Class<?> type, Map<String, Object> fields) {
        RecordComponent[] components = type.getRecordComponents();
        if (fields.size() != components.length) {
            throw new IllegalArgumentException(type.getSimpleName() + ": fields " + fields.keySet() + " vs "
                    + components.length + " components");
        }
        Object[] args = new Object[components.length];
        Class<?>[] types = new Class<?>[components.length];
        for (int i = 0; i < components.length; i++) {
            RecordComponent rc = components[i];
            String key = snake(rc.getName());
            if (!fields.containsKey(key)) {
                throw new IllegalArgumentException(type.getSimpleName() + ": no field " + key);
            }
            args[i] = convert(rc.getGenericType(), fields.get(key));
            types[i] = rc.getType();
        }
        try {
            Constructor<?> ctor = type.getDeclaredConstructor(types);
            return ctor.newInstance(args);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Object convert(Type type, Object json) {
        if (type == long.class) {
            return ((Number) json).longValue(); // a BigInteger above 2^63 keeps its low 64 bits: the raw u64
        }
        if (type == int.class || type == Integer.class) {
            return ((Number) json).intValue();
        }
        if (type == byte[].class) {
            return Hex.decode((String) json);
        }
        if (type == String.class) {
            return json;
        }
        if (type instanceof ParameterizedType p && p.getRawType() == List.class) {
            Type item = p.getActualTypeArguments()[0];
            List<Object> out = new ArrayList<>();
            for (Object x : (List<?>) json) {
                out.add(convert(item, x));
            }
            return out;
        }
        if (type instanceof Class<?> c && c.isRecord()) {
            @SuppressWarnings("unchecked")
            Map<String, Object> m = (Map<String, Object>) json;
            return build(c, m);
        }
        throw new IllegalArgumentException("unsupported component type " + type);
    }

    /** A record's components as a vector's field map: numbers as Long (u64 above 2^63 as BigInteger), bytes as hex. */
    static Map<String, Object> fieldsOf(Record record) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (RecordComponent rc : record.getClass().getRecordComponents()) {
            try {
                out.put(snake(rc.getName()), toJson(rc.getAccessor().invoke(record)));
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
        }
        return out;
    }

    private static Object toJson(Object value) {
        if (value instanceof Long l) {
            return l >= 0 ? l : (Object) new BigInteger(Long.toUnsignedString(l));
        }
        if (value instanceof Integer i) {
            return (long) i;
        }
        if (value instanceof byte[] b) {
            return Hex.encode(b);
        }
        if (value instanceof List<?> list) {
            List<Object> out = new ArrayList<>();
            for (Object x : list) {
                out.add(toJson(x));
            }
            return out;
        }
        if (value instanceof Record r) {
            return fieldsOf(r);
        }
        return value;
    }
}
